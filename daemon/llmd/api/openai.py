"""OpenAI-compatible routes under /v1: chat completions, completions, embeddings and models.

Bodies go through ``llmd.api.openai_convert`` into the same native requests /api/chat and
/api/generate run, so both APIs share one code path below this module. Errors anywhere under
/v1/ are rendered in OpenAI's shape by api/errors.py; once an SSE stream has started, an error
becomes one last ``data: {"error": ...}`` frame.
"""

from __future__ import annotations

from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmd.inference import run as runs
from llmd.inference import limits
from llmd.api import openai_convert as oa
from llmd.api.errors import OllamaJSONResponse, openai_error_body, read_json
from llmd.api.inference import services
from llmd.api.streaming import collect, sse_response
from llmd.errors import InvalidModelName, ModelNotFound
from llmd.inference.values import ChatRequest, Output
from llmd.store import ModelName
from llmd.system.requestlog import annotate

# OpenAI's spelling of the options a limit may refuse, for the error message
_OPENAI_NAMES = {"num_predict": "max_tokens"}


class _AnyTextConvertor(PathConvertor):
    # Starlette's "path" regex stops at a newline, which made /v1/models/a%0Ab the router's
    # plain-text 404 instead of the JSON "model not found" every other bad name gets.
    regex = r"[\s\S]*"


register_url_convertor("anytext", _AnyTextConvertor())


async def _respond(converted: oa.OpenAIRequest, request: Request) -> Response:
    """Run the native request and answer as OpenAI does: one object, or an SSE stream."""
    native = converted.request
    limits.check_generation(native, request.app.state.config, _OPENAI_NAMES)
    annotate(request.state, model=native.model)  # for the request record and its metrics
    is_chat = isinstance(native, ChatRequest)
    items = runs.chat(services(request), native) if is_chat else runs.generate(services(request), native)  # type: ignore[arg-type]
    if not converted.stream:
        chunks, final = await collect(items)
        build = oa.chat_response if is_chat else oa.completion_response
        return OllamaJSONResponse(build(native.model, chunks, final))
    stream = (oa.ChatStream if is_chat else oa.CompletionStream)(native.model, converted.include_usage)

    def render(item: Output) -> list[bytes]:
        return [oa.sse_frame(chunk) for chunk in stream.chunks(item)]

    def error(status: int, message: str) -> bytes:
        return oa.sse_frame(openai_error_body(status, message))

    return await sse_response(items, render, error, oa.SSE_DONE)


async def chat_completions(request: Request) -> Response:
    return await _respond(oa.chat_request_from_openai(await read_json(request)), request)


async def completions(request: Request) -> Response:
    return await _respond(oa.completion_request_from_openai(await read_json(request)), request)


async def embeddings(request: Request) -> Response:
    req, encoding = oa.embed_request_from_openai(await read_json(request))
    limits.check_embed(req, request.app.state.config)
    annotate(request.state, model=req.model)
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
    Route("/v1/models/{model:anytext}", get_model, methods=["GET"]),
]
