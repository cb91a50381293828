"""OpenAI-compatible routes under /v1: chat completions, completions, embeddings and models.

Bodies go through ``llmd.openai_convert`` into the same native requests /api/chat and
/api/generate run, so both APIs share one code path below this module. Errors anywhere under
/v1/ are rendered in OpenAI's shape by api/errors.py; once an SSE stream has started, an error
becomes one last ``data: {"error": ...}`` frame.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from llmd import chat as runs
from llmd import limits
from llmd import openai_convert as oa
from llmd.api.errors import OllamaJSONResponse, openai_error_body, read_json, status_for
from llmd.api.inference import services
from llmd.errors import InvalidModelName, LlmdError, ModelNotFound
from llmd.generation import ChatRequest, Chunk, Final, Output
from llmd.store import ModelName

log = logging.getLogger(__name__)

SSE = "text/event-stream"
# OpenAI's spelling of the options a limit may refuse, for the error message
_OPENAI_NAMES = {"num_predict": "max_tokens"}


async def _collect(items: AsyncIterator[Output]) -> tuple[list[Chunk], Final]:
    chunks: list[Chunk] = []
    try:
        async for item in items:
            if isinstance(item, Final):
                return chunks, item
            chunks.append(item)
    finally:
        await items.aclose()  # type: ignore[attr-defined]  # frees the lease now, not at GC
    raise LlmdError("the generation ended without a result")


async def _frames(
    first: Output, items: AsyncIterator[Output], convert: Callable[[Output], list[dict[str, Any]]]
) -> AsyncIterator[bytes]:
    try:
        for chunk in convert(first):
            yield oa.sse_frame(chunk)
        async for item in items:
            for chunk in convert(item):
                yield oa.sse_frame(chunk)
        yield oa.SSE_DONE
    except LlmdError as exc:
        yield oa.sse_frame(openai_error_body(status_for(exc), exc.message))
    except Exception:
        log.exception("stream failed")
        yield oa.sse_frame(openai_error_body(500, "internal server error"))
    finally:
        await items.aclose()  # type: ignore[attr-defined]


async def _respond(converted: oa.OpenAIRequest, request: Request) -> Response:
    """Run the native request and answer as OpenAI does: one object, or an SSE stream."""
    native = converted.request
    limits.check_generation(native, request.app.state.config, _OPENAI_NAMES)
    is_chat = isinstance(native, ChatRequest)
    items = runs.chat(services(request), native) if is_chat else runs.generate(services(request), native)  # type: ignore[arg-type]
    if not converted.stream:
        chunks, final = await _collect(items)
        build = oa.chat_response if is_chat else oa.completion_response
        return OllamaJSONResponse(build(native.model, chunks, final))
    stream = (oa.ChatStream if is_chat else oa.CompletionStream)(native.model, converted.include_usage)
    first = await anext(items)  # errors before the first byte keep their status code
    return StreamingResponse(_frames(first, items, stream.chunks), media_type=SSE)


async def chat_completions(request: Request) -> Response:
    return await _respond(oa.chat_request_from_openai(await read_json(request)), request)


async def completions(request: Request) -> Response:
    return await _respond(oa.completion_request_from_openai(await read_json(request)), request)


async def embeddings(request: Request) -> Response:
    req, encoding = oa.embed_request_from_openai(await read_json(request))
    limits.check_embed(req, request.app.state.config)
    result = await runs.embed(services(request), req)
    return OllamaJSONResponse(
        oa.embeddings_response(req.model, result.vectors, result.prompt_eval_count, encoding)
    )


async def list_models(request: Request) -> Response:
    models = await request.app.state.store.list()
    return OllamaJSONResponse(oa.models_list(
        oa.model_object(m.name.short, int(m.modified_at.timestamp()), m.name.namespace) for m in models
    ))


async def get_model(request: Request) -> Response:
    name = request.path_params["model"]
    try:
        model = await request.app.state.store.get(ModelName.parse(name))
    except (InvalidModelName, ModelNotFound):
        raise ModelNotFound(f"model '{name}' not found") from None
    created = int(model.modified_at.timestamp())
    return OllamaJSONResponse(oa.model_object(name, created, model.name.namespace))


routes: list[BaseRoute] = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    # names hold ":" and "/" (host/namespace/model:tag), so the whole rest of the path is the name
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
]
