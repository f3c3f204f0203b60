"""The published document and the server agree: what ``/openapi.json`` allows is accepted, and
what the server refuses is refused by a rule the document states.

A client generated from the document, or a fuzzer reading it, sends exactly the documented
bounds, lengths and patterns; every gap between document and server is a request that the
document promises will work and the server refuses (or the other way round).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from bookstore.gateway.schemas import MAX_INT64, NOT_ONLY_WHITESPACE, USERNAME_PATTERN

NUMERIC_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def schemas_in(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node`` that declares a ``type``: the schemas of a document."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield node
        for value in node.values():
            yield from schemas_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from schemas_in(item)


def test_integer_bounds_are_published_as_exact_integers(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    bounds = [
        (schema.get("title"), key, schema[key])
        for schema in schemas_in(document)
        if schema["type"] == "integer"
        for key in NUMERIC_BOUNDS
        if key in schema
    ]
    assert bounds, "the document declares no integer bounds at all"
    assert [bound for bound in bounds if not isinstance(bound[2], int)] == []
    item = document["components"]["schemas"]["OrderItemBody"]["properties"]
    assert item["book_id"]["maximum"] == MAX_INT64
    assert item["quantity"]["minimum"] == 1


def test_the_documented_largest_book_id_is_accepted(client: TestClient, alice: dict[str, str]) -> None:
    document = client.get("/openapi.json").json()
    largest = document["components"]["schemas"]["OrderItemBody"]["properties"]["book_id"]["maximum"]

    response = client.post("/orders", json={"items": [{"book_id": largest, "quantity": 1}]}, headers=alice)

    # Past validation: the (fake) order service says no such book, rather than the gateway a 422.
    assert response.status_code == 404, response.text


def test_the_username_pattern_the_server_enforces_is_published(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    username = document["components"]["schemas"]["RegisterBody"]["properties"]["username"]

    assert username["pattern"] == USERNAME_PATTERN
    refused = client.post("/auth/register", json={"username": "_alice", "password": "correct horse"})
    assert refused.status_code == 422
    assert [problem["loc"] for problem in refused.json()["detail"]] == [["body", "username"]]


def test_a_string_too_long_is_counted_in_characters(client: TestClient, alice: dict[str, str]) -> None:
    order = {"items": [{"book_id": 1, "quantity": 1}], "request_id": "r" * 101}
    responses = {
        "username": client.post("/auth/login", json={"username": "a" * 33, "password": "correct horse"}),
        "password": client.post("/auth/register", json={"username": "alice", "password": "p" * 129}),
        "request_id": client.post("/orders", json=order, headers=alice),
        "q": client.get("/books/search", params={"q": "q" * 101}),
        "page_token": client.get("/books", params={"page_token": "1" * 65}),
    }

    messages = {field: [p["msg"] for p in response.json()["detail"]] for field, response in responses.items()}
    assert all(response.status_code == 422 for response in responses.values()), messages
    counted_in = {field: all("characters" in msg for msg in msgs) for field, msgs in messages.items()}
    assert counted_in == dict.fromkeys(responses, True), messages


def test_the_page_token_is_documented_as_the_digits_the_services_take(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    for path in ("/books", "/orders"):
        parameters = document["paths"][path]["get"]["parameters"]
        (token,) = [p["schema"] for p in parameters if p["name"] == "page_token"]
        assert (token["maxLength"], token["pattern"]) == (9, "^[0-9]*$"), path

    assert client.get("/books", params={"page_token": "9" * 9}).status_code == 200
    for outside in ("9" * 10, "not-mine", "١٢"):  # the last: Arabic-Indic digits, which str.isdigit() takes
        refused = client.get("/books", params={"page_token": outside})
        assert refused.status_code == 422, outside
        assert refused.json()["detail"][0]["loc"] == ["query", "page_token"]


def test_a_405_lists_every_method_served_on_the_path(client: TestClient, alice: dict[str, str]) -> None:
    for method, path, served in (
        ("PUT", "/orders", {"GET", "POST"}),
        ("DELETE", "/orders", {"GET", "POST"}),
        ("PATCH", f"/orders/{uuid.uuid4()}", {"GET"}),
        ("POST", "/books", {"GET"}),
    ):
        response = client.request(method, path, headers=alice)
        assert response.status_code == 405, (method, path)
        allowed = {name.strip() for name in response.headers["allow"].split(",")}
        assert allowed == served, (method, path, response.headers["allow"])


def test_a_json_body_that_is_not_utf8_is_refused_naming_the_encoding(
    client: TestClient, alice: dict[str, str]
) -> None:
    # RFC 8259 section 8.1: JSON exchanged between systems is UTF-8. Python's json.loads would
    # guess UTF-16 or UTF-32 from the first bytes, and the order would be placed.
    text = '{"items": [{"book_id": 1, "quantity": 1}]}'
    headers = {**alice, "Content-Type": "application/json"}
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        response = client.post("/orders", content=text.encode(encoding), headers=headers)
        assert response.status_code == 400, (encoding, response.text)
        assert "UTF-8" in response.json()["detail"], encoding

    assert client.post("/orders", content=text.encode("utf-8"), headers=headers).status_code == 201

    too_large = b'{"items": [], "request_id": "' + b"x" * 70_000 + b'"}'
    assert client.post("/orders", content=too_large, headers=headers).status_code == 413


def test_a_whole_number_written_with_a_fraction_is_an_integer(
    client: TestClient, alice: dict[str, str]
) -> None:
    # JSON Schema (2020-12, section 6.1.1 of the validation spec) counts 2.0 as an integer, and
    # the document says "type": "integer"; text such as "2" or a fraction such as 2.5 is not one.
    placed = client.post("/orders", json={"items": [{"book_id": 1.0, "quantity": 2.0}]}, headers=alice)
    assert placed.status_code == 201, placed.text
    assert placed.json()["items"][0]["quantity"] == 2

    for quantity in ("2", 2.5, True):
        body = {"items": [{"book_id": 1, "quantity": quantity}]}
        refused = client.post("/orders", json=body, headers=alice)
        assert refused.status_code == 422, quantity


def test_a_query_of_whitespace_alone_is_refused_as_documented(client: TestClient) -> None:
    """The services strip text, so "  " is an empty query to them: the document must say so
    (schemathesis found a schema-valid "+" answered 400 by the catalog)."""
    document = client.get("/openapi.json").json()
    (q,) = [p["schema"] for p in document["paths"]["/books/search"]["get"]["parameters"] if p["name"] == "q"]
    assert q["pattern"] == NOT_ONLY_WHITESPACE
    for blank in (" ", "\t \u3000", "\x1c"):
        refused = client.get("/books/search", params={"q": blank})
        assert refused.status_code == 422, (blank, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["query", "q"]
    assert client.get("/books/search", params={"q": " dune "}).status_code == 200
