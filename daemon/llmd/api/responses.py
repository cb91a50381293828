"""POST /v1/responses, the OpenAI Responses API: what ``client.responses`` and Codex-style agents call.

The body becomes a native chat request (responses_convert) that runs down the same path as
/api/chat and /v1/chat/completions; the answer is one ``response`` object or, with ``stream``,
the Responses event sequence over SSE. Errors before the stream starts are OpenAI-shaped
(api/errors.py); an error after it ends the stream with ``response.failed``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmd.inference import run as runs
from llmd.inference import limits
from llmd.api import responses_convert as rc
from llmd.api.errors import OllamaJSONResponse, read_json
from llmd.api.inference import services
from llmd.api.streaming import collect, sse_event, sse_response
from llmd.inference.values import Output
from llmd.system.requestlog import annotate


# the Responses API's spelling of the options a limit may refuse, for the error message
_RESPONSES_NAMES = {"num_predict": "max_output_tokens"}


async def create_response(request: Request) -> Response:
    req = rc.responses_request(await read_json(request))
    limits.check_generation(req.chat, request.app.state.config, _RESPONSES_NAMES)
    annotate(request.state, model=req.chat.model)  # for the request record and its metrics
    items = runs.chat(services(request), req.chat)
    if not req.stream:
        chunks, final = await collect(items)
        return OllamaJSONResponse(rc.response_object(req, chunks, final))
    stream = rc.ResponseStream(req)

    def render(item: Output) -> list[bytes]:
        return [sse_event(name, data) for name, data in stream.events(item)]

    def error(status: int, message: str) -> bytes:
        code = "server_error" if status >= 500 else "invalid_request"
        return b"".join(sse_event(name, data) for name, data in stream.failed(code, message))

    return await sse_response(items, render, error)


routes: list[BaseRoute] = [
    Route("/v1/responses", create_response, methods=["POST"]),
]
