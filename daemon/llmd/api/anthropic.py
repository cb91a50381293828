"""The Anthropic Messages routes: POST /v1/messages and POST /v1/messages/count_tokens.

What the ``anthropic`` SDK and Claude-Code-style agents call when pointed at llmd with a base
URL. Bodies become native chat requests (anthropic_convert) that run down the same path as
/api/chat; answers are one ``message`` object or, with ``stream``, Anthropic's event sequence
over SSE. Errors are Anthropic-shaped (api/errors.py), and once a stream has started an error is
an ``error`` event. count_tokens, which Ollama does not serve, renders the prompt as a chat would
and counts it with the model's own tokenizer.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmd.inference import run as runs
from llmd.inference import limits
from llmd.api import anthropic_convert as ac
from llmd.api.errors import OllamaJSONResponse, anthropic_error_body, read_json
from llmd.api.inference import services
from llmd.api.streaming import collect, sse_event, sse_response
from llmd.inference.values import Output
from llmd.system.requestlog import annotate


# Anthropic's spelling of the options a limit may refuse, for the error message
_ANTHROPIC_NAMES = {"num_predict": "max_tokens"}


async def create_message(request: Request) -> Response:
    req = ac.messages_request(await read_json(request))
    limits.check_generation(req.chat, request.app.state.config, _ANTHROPIC_NAMES)
    annotate(request.state, model=req.chat.model)  # for the request record and its metrics
    items = runs.chat(services(request), req.chat)
    if not req.stream:
        chunks, final = await collect(items)
        return OllamaJSONResponse(ac.message_object(req.chat.model, chunks, final))
    stream = ac.MessageStream(req.chat.model)

    def render(item: Output) -> list[bytes]:
        return [sse_event(name, data) for name, data in stream.events(item)]

    def error(status: int, message: str) -> bytes:
        return sse_event("error", anthropic_error_body(status, message))

    return await sse_response(items, render, error)


async def count_tokens(request: Request) -> Response:
    req = ac.count_tokens_request(await read_json(request))
    limits.check_generation(req, request.app.state.config, _ANTHROPIC_NAMES)
    return OllamaJSONResponse({"input_tokens": await runs.count_tokens(services(request), req)})


routes: list[BaseRoute] = [
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
