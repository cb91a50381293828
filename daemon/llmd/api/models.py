"""Model-management routes: tags, show, create, copy, delete and blobs (Ollama's native API).

And llmd's own ``/api/verify {"model"?}``: it hashes the blobs of one model (or of every model)
again and streams ``{"status": "verifying <12 hex>", "digest", "total", "corrupt"}`` per blob,
then ``success`` or an error line naming the corrupt blobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmd.api.errors import OllamaJSONResponse, read_json
from llmd.api.limits import declared_length
from llmd.api.render import format_parameters, rfc3339, trim_arrays
from llmd.api.schemas import parse_copy, parse_create, parse_delete, parse_show, parse_verify
from llmd.api.streaming import Event, ndjson_response, status_events
from llmd.errors import BlobNotFound, CorruptBlobs, ModelNotFound
from llmd.store import Model, Store, format_modelfile, parse_digest
from llmd.store.digest import short


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def tag_item(model: Model) -> dict[str, Any]:
    short = model.name.short
    return {
        "name": short,
        "model": short,
        "modified_at": rfc3339(model.modified_at),
        "size": model.size,
        "digest": model.digest,
        "details": model.details(),
    }


def show_body(model: Model, verbose: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "license": "\n".join(model.license),
        "modelfile": format_modelfile(model),
        "parameters": format_parameters(model.parameters),
        # without a TEMPLATE layer the GGUF's own chat template is what chat uses, so show it
        "template": model.template or model.info.chat_template or "",
        "system": model.system or "",
        "details": model.details(),
        "messages": [{"role": m.role, "content": m.content} for m in model.messages],
    }
    # Go's omitempty: empty strings and lists are left out, which clients treat as absent
    body = {key: value for key, value in body.items() if value not in ("", [])}
    body["model_info"] = trim_arrays(dict(model.info.metadata), verbose)
    body["capabilities"] = list(model.capabilities)
    if model.warnings:  # llmd's own field: what makes the model answer other than meant
        body["warnings"] = list(model.warnings)
    body["modified_at"] = rfc3339(model.modified_at)
    return body


async def tags(request: Request) -> Response:
    models = await _store(request).list()
    return OllamaJSONResponse({"models": [tag_item(m) for m in models]})


async def show(request: Request) -> Response:
    req = parse_show(await read_json(request))
    try:
        model = await _store(request).get(req.name)
    except ModelNotFound:
        raise ModelNotFound(f"model '{req.name.short}' not found") from None
    return OllamaJSONResponse(show_body(model, req.verbose))


async def create(request: Request) -> Response:
    body = parse_create(await read_json(request))
    return await ndjson_response(status_events(_store(request).create(body.request)), stream=body.stream)


async def copy(request: Request) -> Response:
    req = parse_copy(await read_json(request))
    try:
        await _store(request).copy(req.source, req.destination)
    except ModelNotFound:
        raise ModelNotFound(f'model "{req.source.short}" not found') from None
    return Response(status_code=200)


async def delete(request: Request) -> Response:
    req = parse_delete(await read_json(request))
    try:
        await _store(request).delete(req.name)
    except ModelNotFound:
        raise ModelNotFound(f"model '{req.text}' not found") from None
    return Response(status_code=200)


async def head_blob(request: Request) -> Response:
    digest = parse_digest(request.path_params["digest"])
    if not _store(request).has_blob(digest):
        raise BlobNotFound(f'blob "{digest}" not found')
    return Response(status_code=200)


async def create_blob(request: Request) -> Response:
    digest = parse_digest(request.path_params["digest"])
    store = _store(request)
    if store.has_blob(digest):
        return Response(status_code=200)  # Ollama answers before reading the body
    # exempt from max_request_bytes (api/limits.py): streamed to disk, bounded by free space
    created = await store.write_blob(
        digest, request.stream(), size=declared_length(request.scope),
        min_free=request.app.state.config.min_free_disk,
    )
    return Response(status_code=201 if created else 200)


async def _verify_lines(checks: AsyncIterator[Any]) -> AsyncIterator[Event]:
    corrupt: list[str] = []
    async for check in checks:
        if not check.ok:
            corrupt.append(check.digest)
        yield {"status": f"verifying {short(check.digest)}", "digest": check.digest,
               "total": check.size, "corrupt": not check.ok}
    if corrupt:
        raise CorruptBlobs(f"{len(corrupt)} corrupt or missing blob(s): {', '.join(corrupt)}")
    yield {"status": "success"}


async def verify(request: Request) -> Response:
    raw = await request.body()
    body = parse_verify(await read_json(request) if raw.strip() else {})
    checks = _store(request).check_blobs(body.name)
    return await ndjson_response(_verify_lines(checks), stream=body.stream)


routes: list[BaseRoute] = [
    Route("/api/tags", tags, methods=["GET", "HEAD"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/create", create, methods=["POST"]),
    Route("/api/copy", copy, methods=["POST"]),
    Route("/api/delete", delete, methods=["DELETE"]),
    Route("/api/blobs/{digest}", head_blob, methods=["HEAD"]),
    Route("/api/blobs/{digest}", create_blob, methods=["POST"]),
    Route("/api/verify", verify, methods=["POST"]),
]
