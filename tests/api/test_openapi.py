"""The OpenAPI document at /api/openapi.json is held to the app's routes and to its validators.

A route added without documentation, a documented operation with no route, a required field the
validator does not require (or the other way round), and a documented type the validator lets
through all fail here; the live behaviour is fuzzed against the same document in tests/fuzz.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from llmd.api import openai_convert as oa
from llmd.api import anthropic_convert as ac
from llmd.api import inference_schemas as inf
from llmd.api import registry, responses_convert, schemas
from llmd.api.openapi import JSON, document
from llmd.config import Config
from llmd.errors import LlmdError
from llmd.server import build_server_app

Validator = Callable[[Mapping[str, Any]], object]

# Every documented operation that takes a JSON body, and the function that validates that body.
VALIDATORS: dict[tuple[str, str], Validator] = {
    ("post", "/api/generate"): inf.parse_generate,
    ("post", "/api/chat"): inf.parse_chat,
    ("post", "/api/embed"): inf.parse_embed,
    ("post", "/api/embeddings"): inf.parse_embeddings,
    ("post", "/api/show"): schemas.parse_show,
    ("post", "/api/create"): schemas.parse_create,
    ("post", "/api/copy"): schemas.parse_copy,
    ("delete", "/api/delete"): schemas.parse_delete,
    ("post", "/api/pull"): lambda body: registry.parse_transfer(body, "PullRequest"),
    ("post", "/api/push"): lambda body: registry.parse_transfer(body, "PushRequest"),
    ("post", "/api/verify"): schemas.parse_verify,
    ("post", "/v1/chat/completions"): oa.chat_request_from_openai,
    ("post", "/v1/completions"): oa.completion_request_from_openai,
    ("post", "/v1/embeddings"): oa.embed_request_from_openai,
    ("post", "/v1/responses"): responses_convert.responses_request,
    ("post", "/v1/messages"): ac.messages_request,
    ("post", "/v1/messages/count_tokens"): ac.count_tokens_request,
}

# Required in the document but refused below the validator: Ollama's GenerateHandler answers a
# missing model with 404 "model '' not found", which chat.resolve reproduces.
REFUSED_BELOW = {("post", "/api/generate", "model")}

# A value of another JSON type than the one documented.
WRONG_TYPE: dict[str, object] = {
    "string": 12345, "integer": "12", "number": "1.5", "boolean": "yes", "object": "x", "array": "x",
}

DOC = document()
SCHEMAS = DOC["components"]["schemas"]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def json_type(prop: dict[str, Any]) -> str | None:
    """The one JSON type a field documents, null (absent) aside; None for a union."""
    prop = resolve(prop)
    if "anyOf" in prop:
        kinds = [json_type(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return kinds[0] if len(kinds) == 1 else None
    kind = prop.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind


def json_bodies() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(method, path, resolved request schema, example) of each operation with a JSON body."""
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            media = op.get("requestBody", {}).get("content", {}).get(JSON)
            if media is not None:
                yield method, path, resolve(media["schema"]), media["example"]


def lowered(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in body.items()}  # what errors.read_json hands the validators


def refused(validate: Validator, body: Mapping[str, Any]) -> bool:
    try:
        validate(lowered(body))
    except LlmdError:
        return True
    return False


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route of the app `llmd serve` runs."""
    app = build_server_app(Config(models=tmp_path_factory.mktemp("models")), middleware=[])
    out = set()
    for route in app.routes:
        assert isinstance(route, Route), route
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)  # {model:anytext} -> {model}
        out |= {(m.lower(), path) for m in route.methods or ()}
    return out


def test_every_route_is_documented_and_every_documented_operation_is_a_route(
    app_routes: set[tuple[str, str]],
) -> None:
    documented = {(method, path) for path, item in DOC["paths"].items() for method in item}
    assert app_routes - documented == set(), "routes missing from api/openapi.py"
    assert documented - app_routes == set(), "documented operations the app does not serve"


def test_the_document_is_served_at_api_openapi_json(tmp_path: Path) -> None:
    app = build_server_app(Config(models=tmp_path), middleware=[])
    # from loopback, as a local client is: no API key needed under the default auth policy
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == DOC
    assert DOC["openapi"].startswith("3.1")


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_a_null_field_is_taken_as_absent_as_go_does() -> None:
    for method, path, schema, example in json_bodies():
        validate = VALIDATORS[method, path]
        required = set(schema.get("required", ()))  # null there is absent, and refused as that is
        for field in example:
            if field not in {"model", "source", "destination", "from", "messages", "input"} | required:
                assert not refused(validate, {**example, field: None}), (method, path, field)


def test_each_json_body_has_its_validator_listed_here() -> None:
    assert {(m, p) for m, p, _, _ in json_bodies()} == set(VALIDATORS)


def test_each_documented_example_is_accepted_by_the_validator() -> None:
    for method, path, schema, example in json_bodies():
        jsonschema.validate(example, schema | {"components": DOC["components"]})
        assert not refused(VALIDATORS[method, path], example), (method, path, example)


def test_each_required_field_is_required_by_the_validator_and_no_other_is() -> None:
    for method, path, schema, example in json_bodies():
        validate = VALIDATORS[method, path]
        required = set(schema.get("required", ()))
        for field in example:
            if (method, path, field) in REFUSED_BELOW:
                continue
            without = {k: v for k, v in example.items() if k != field}
            groups = [set(g["required"]) for g in schema.get("anyOf", ())]
            needed = field in required or any(g == {field} for g in groups)
            assert refused(validate, without) == needed, (method, path, field)


def test_a_value_of_the_wrong_json_type_is_refused_for_each_typed_field() -> None:
    checked = 0
    for method, path, schema, example in json_bodies():
        validate = VALIDATORS[method, path]
        for field, prop in schema["properties"].items():
            kind = json_type(prop)
            if kind not in WRONG_TYPE:
                continue
            assert refused(validate, {**example, field: WRONG_TYPE[kind]}), (method, path, field)
            checked += 1
    assert checked > 50
