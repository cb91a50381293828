"""The NDJSON helper: status codes before the first byte, error lines after, stream:false."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from llmd.api.errors import EXCEPTION_HANDLERS, error_response, openai_error_response
from llmd.api.streaming import ndjson_response
from llmd.errors import InvalidModelFile, ModelNotFound, QueueFull


async def _events(request: Request) -> AsyncIterator[dict[str, Any]]:
    fail_at = int(request.query_params.get("fail_at", "-1"))
    for i in range(3):
        if i == fail_at:
            raise InvalidModelFile("bad weights")
        yield {"status": f"step {i}", "i": i}


async def endpoint(request: Request) -> Response:
    stream = request.query_params.get("stream", "true") == "true"
    if request.query_params.get("sum"):
        return await ndjson_response(
            _events(request), stream=stream, collapse=lambda evs: {"total": sum(e["i"] for e in evs)}
        )
    return await ndjson_response(_events(request), stream=stream)


client = TestClient(Starlette(routes=[Route("/s", endpoint)], exception_handlers=dict(EXCEPTION_HANDLERS)))


def _lines(r: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in r.text.splitlines()]


def test_a_stream_is_ndjson_one_object_per_line() -> None:
    r = client.get("/s")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-ndjson"
    assert [e["status"] for e in _lines(r)] == ["step 0", "step 1", "step 2"]


def test_an_error_before_the_first_byte_keeps_its_status() -> None:
    r = client.get("/s?fail_at=0")
    assert r.status_code == 400
    assert r.json() == {"error": "bad weights"}


def test_an_error_after_the_first_byte_becomes_an_error_line() -> None:
    r = client.get("/s?fail_at=2")
    assert r.status_code == 200
    assert _lines(r) == [{"status": "step 0", "i": 0}, {"status": "step 1", "i": 1}, {"error": "bad weights"}]


def test_stream_false_answers_the_last_object() -> None:
    r = client.get("/s?stream=false")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json() == {"status": "step 2", "i": 2}


def test_stream_false_with_an_error_answers_the_error_status() -> None:
    r = client.get("/s?stream=false&fail_at=2")
    assert r.status_code == 400
    assert r.json() == {"error": "bad weights"}


def test_stream_false_can_reduce_the_objects() -> None:
    assert client.get("/s?stream=false&sum=1").json() == {"total": 3}


def test_errors_map_to_ollama_and_openai_shapes() -> None:
    r = error_response(ModelNotFound("model 'nope' not found"))
    assert r.status_code == 404
    assert json.loads(bytes(r.body)) == {"error": "model 'nope' not found"}
    r = openai_error_response(ModelNotFound("model 'nope' not found"))
    assert json.loads(bytes(r.body)) == {
        "error": {"message": "model 'nope' not found", "type": "not_found_error", "param": None, "code": None}
    }
    r = openai_error_response(QueueFull())
    assert r.status_code == 503
    assert json.loads(bytes(r.body))["error"]["type"] == "api_error"
