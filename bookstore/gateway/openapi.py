"""The published ``/openapi.json``: FastAPI's document, with the models' schemas kept exact.

The document is a contract. Clients are generated from it, and fuzzers such as schemathesis
read it to send exactly the documented extremes: the largest ``book_id``, the smallest
``quantity``. So a bound in the document must be the bound the server enforces, to the unit.

FastAPI builds the document by passing it through its own pydantic model of OpenAPI, whose
``minimum``, ``maximum`` and ``multipleOf`` fields are typed ``float``. Every bound of a model
in ``components/schemas`` comes out as a float: ``quantity``'s minimum 1 reads ``1.0``, and
``book_id``'s maximum 2**63-1 (the int64 maximum) reads ``9.223372036854776e+18``, which is
2**63: a float has 53 bits of mantissa, so it cannot hold 2**63-1. A client that sends the
documented maximum gets 422, because it does not fit an int64. (The ``paths`` part of the
document is not passed through that model, so route parameters were always exact.)

``install_exact_openapi`` keeps FastAPI's document and puts back the model schemas as
pydantic wrote them, integers and all. It regenerates them with the same functions, and so
the same names, that FastAPI's ``get_openapi`` uses (``fastapi.openapi.utils``); a unit test
compares the published bounds, so a FastAPI upgrade that changes them cannot pass unnoticed.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import (  # type: ignore[attr-defined]
    get_definitions,
    get_fields_from_routes,
    get_flat_models_from_fields,
    get_model_name_map,
)


def exact_model_schemas(app: FastAPI) -> dict[str, dict[str, Any]]:
    """The JSON schemas of ``app``'s models, by their names in ``components/schemas``."""
    fields = get_fields_from_routes(list(app.routes))
    model_name_map = get_model_name_map(get_flat_models_from_fields(fields, known_models=set()))
    _, definitions = get_definitions(
        fields=fields,
        model_name_map=model_name_map,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    schemas: dict[str, dict[str, Any]] = definitions
    return schemas


def install_exact_openapi(app: FastAPI) -> None:
    """Make ``app`` publish its OpenAPI document with the model schemas exactly as pydantic wrote them."""
    fixed: list[dict[str, Any]] = []  # the document already fixed, which FastAPI caches

    def openapi() -> dict[str, Any]:
        document = FastAPI.openapi(app)
        if not fixed or fixed[0] is not document:
            document.setdefault("components", {}).setdefault("schemas", {}).update(exact_model_schemas(app))
            fixed[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]
