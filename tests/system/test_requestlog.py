"""One record per request, with the fields routes attach; prompt text only when debugging."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import httpx
import pytest
from llmd.system import messages
from llmd.system.requestlog import RequestLogMiddleware, annotate
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


async def chat(request: Request) -> StreamingResponse:
    async def body():  # type: ignore[no-untyped-def]
        yield b'{"done":false}\n'
        # counts are known only at the end of the stream
        annotate(request.state, model="smollm2:135m", prompt_tokens=12, eval_tokens=3,
                 prompt="secret prompt", output="secret output")
        yield b'{"done":true}\n'

    return StreamingResponse(body(), media_type="application/x-ndjson")


async def missing(request: Request) -> JSONResponse:
    return JSONResponse({"error": "model 'x' not found"}, status_code=404)


async def broken(request: Request) -> JSONResponse:
    raise RuntimeError("bug")


def _app(debug: int) -> Starlette:
    app = Starlette(
        routes=[Route("/api/chat", chat, methods=["POST"]), Route("/api/show", missing, methods=["POST"]),
                Route("/boom", broken)],
        middleware=[Middleware(RequestLogMiddleware)],
    )
    app.state.config = SimpleNamespace(debug=debug)
    return app


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "llmd.request"]


async def test_a_streamed_request_gets_one_record_with_the_routes_fields(caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=_app(debug=0), client=("::ffff:10.0.0.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.INFO, logger="llmd.request"):
            reply = await client.post("/api/chat", json={})
    assert reply.status_code == 200
    [record] = _records(caplog)
    fields = record.__dict__
    assert fields["MESSAGE_ID"] == messages.REQUEST
    assert fields["ENDPOINT"] == "POST /api/chat"
    assert (fields["STATUS"], fields["MODEL"], fields["PROMPT_TOKENS"], fields["EVAL_TOKENS"]) == (
        200, "smollm2:135m", 12, 3)
    assert fields["CLIENT"] == "10.0.0.7"
    assert fields["DURATION_MS"] >= 0
    assert len(fields["REQUEST_ID"]) == 16
    assert "PROMPT" not in fields and "OUTPUT" not in fields


async def test_prompt_and_output_text_are_recorded_only_when_debugging(caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=_app(debug=1))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.INFO, logger="llmd.request"):
            await client.post("/api/chat", json={})
    [record] = _records(caplog)
    assert (record.PROMPT, record.OUTPUT) == ("secret prompt", "secret output")  # type: ignore[attr-defined]


async def test_error_replies_and_crashes_are_recorded_with_their_status(caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.ASGITransport(app=_app(debug=0), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.INFO, logger="llmd.request"):
            assert (await client.post("/api/show", json={})).status_code == 404
            assert (await client.get("/boom")).status_code == 500
    assert [(r.ENDPOINT, r.STATUS) for r in _records(caplog)] == [  # type: ignore[attr-defined]
        ("POST /api/show", 404), ("GET /boom", 500)]
    ids = {r.REQUEST_ID for r in _records(caplog)}  # type: ignore[attr-defined]
    assert len(ids) == 2


async def test_a_request_cancelled_before_any_response_is_recorded_as_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def hung_up(scope, receive, send):  # type: ignore[no-untyped-def]
        # what the disconnect middleware does to a request whose client went away
        raise asyncio.CancelledError

    async def nothing(message):  # type: ignore[no-untyped-def]
        raise AssertionError("a cancelled request sends nothing")

    scope = {"type": "http", "method": "POST", "path": "/api/chat", "headers": [],
             "client": ("127.0.0.1", 5555)}
    with caplog.at_level(logging.INFO, logger="llmd.request"), pytest.raises(asyncio.CancelledError):
        await RequestLogMiddleware(hung_up)(scope, nothing, nothing)
    [record] = _records(caplog)
    assert (record.__dict__["ENDPOINT"], record.__dict__["STATUS"]) == ("POST /api/chat", 499)
