"""The dependency that hands routes what the lifespan put on ``app.state``."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from bookstore.gateway.app import app_state

Thing = Annotated[Any, Depends(app_state("thing", "demo app"))]


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/thing")
    def read(thing: Thing) -> dict[str, Any]:
        return {"thing": thing}

    return app


def test_a_route_gets_what_the_lifespan_set() -> None:
    app = _app()
    app.state.thing = 42
    assert TestClient(app).get("/thing").json() == {"thing": 42}


def test_a_missing_value_names_the_app_the_attribute_and_the_likely_cause() -> None:
    with pytest.raises(RuntimeError, match=r"the demo app has no thing: its lifespan did not run"):
        TestClient(_app()).get("/thing")
