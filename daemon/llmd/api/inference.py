"""Native inference routes: /api/generate, /api/chat, /api/embed, /api/embeddings and /api/ps.

Each handler parses the body (inference_schemas), calls one function of ``llmd.inference.run``
and renders its typed items as Ollama's JSON objects; NDJSON framing and in-stream errors are
streaming.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmd.inference import run as runs
from llmd.inference import limits
from llmd.api.errors import OllamaJSONResponse, read_json
from llmd.api.inference_schemas import (
    parse_chat,
    parse_embed,
    parse_embeddings,
    parse_generate,
)
from llmd.api.render import rfc3339
from llmd.api.streaming import Event, ndjson_response
from llmd.inference.values import Final, Output, ToolCall
from llmd.runner.request import TokenLogprob
from llmd.system.requestlog import annotate

# Ollama's keep_alive "forever" is MaxInt64 ns from now: about 292 years.
_FOREVER = timedelta(days=292 * 365)
_METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
            "eval_count", "eval_duration")


def services(request: Request) -> runs.Services:
    state = request.app.state
    return runs.Services(state.config, state.store, state.scheduler)


def _now() -> str:
    return rfc3339(datetime.now(UTC))


def logprobs_json(values: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    def one(lp: TokenLogprob) -> dict[str, Any]:
        out: dict[str, Any] = {"token": lp.token, "logprob": lp.logprob}
        if lp.bytes:
            out["bytes"] = list(lp.bytes)
        if lp.top_logprobs:
            out["top_logprobs"] = [one(t) for t in lp.top_logprobs]
        return out

    return [one(lp) for lp in values]


def tool_call_json(call: ToolCall) -> dict[str, Any]:
    function = {"index": call.index, "name": call.name, "arguments": dict(call.arguments)}
    return {"id": call.id, "function": function} if call.id else {"function": function}


def _final_fields(final: Final) -> dict[str, Any]:
    out: dict[str, Any] = {"done": True, "done_reason": final.done_reason}
    if final.context is not None:
        out["context"] = list(final.context)
    for key in _METRICS:
        value = getattr(final, key)
        if value:  # Go's omitempty, as Ollama's Metrics: a zero is left out, not sent as 0
            out[key] = value
    return out


def generate_json(model: str, item: Output) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "created_at": _now(), "response": ""}
    if isinstance(item, Final):
        return {**out, **_final_fields(item)}
    out["response"] = item.content
    if item.thinking:
        out["thinking"] = item.thinking
    if item.logprobs:
        out["logprobs"] = logprobs_json(item.logprobs)
    return {**out, "done": False}


def chat_json(model: str, item: Output) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    out: dict[str, Any] = {"model": model, "created_at": _now(), "message": message}
    if isinstance(item, Final):
        return {**out, **_final_fields(item)}
    message["content"] = item.content
    if item.thinking:
        message["thinking"] = item.thinking
    if item.tool_calls:
        message["tool_calls"] = [tool_call_json(c) for c in item.tool_calls]
    if item.logprobs:
        out["logprobs"] = logprobs_json(item.logprobs)
    return {**out, "done": False}


def collapse(events: Sequence[Event]) -> Event:
    """``stream: false``: text, thinking, tool calls and logprobs joined; the rest from the last."""
    last = dict(events[-1])
    parts = [e for e in events if not e.get("done")]
    logprobs = [lp for e in parts for lp in e.get("logprobs", ())]
    if logprobs:
        last["logprobs"] = logprobs
    if "message" in last:
        messages = [e["message"] for e in parts]
        joined: dict[str, Any] = {"role": "assistant", "content": "".join(m["content"] for m in messages)}
        if thinking := "".join(m.get("thinking", "") for m in messages):
            joined["thinking"] = thinking
        if calls := [c for m in messages for c in m.get("tool_calls", ())]:
            joined["tool_calls"] = calls
        last["message"] = joined
    else:
        last["response"] = "".join(e["response"] for e in parts)
        if thinking := "".join(e.get("thinking", "") for e in parts):
            last["thinking"] = thinking
    return last


async def _rendered(
    items: AsyncIterator[Output], render: Any, model: str, state: Any
) -> AsyncIterator[Event]:
    # the request's journal record (requestlog) carries MODEL and, once known, the token counts
    annotate(state, model=str(model))
    async for item in items:
        if isinstance(item, Final):
            annotate(state, prompt_tokens=item.prompt_eval_count, eval_tokens=item.eval_count)
        yield render(model, item)


async def _generation(request: Request, parse: Any, run: Any, render: Any) -> Response:
    """/api/generate and /api/chat: parse, check the caps, run, stream NDJSON (or one object)."""
    req = parse(await read_json(request))
    limits.check_generation(req, request.app.state.config)
    rendered = _rendered(run(services(request), req), render, req.model, request.state)
    # a load or unload is one application/json object whatever `stream` says, as Ollama's c.JSON
    stream = req.stream and not runs.loads_only(req)
    return await ndjson_response(rendered, stream=stream, collapse=collapse)


async def generate(request: Request) -> Response:
    return await _generation(request, parse_generate, runs.generate, generate_json)


async def chat(request: Request) -> Response:
    return await _generation(request, parse_chat, runs.chat, chat_json)


async def embed(request: Request) -> Response:
    req = parse_embed(await read_json(request))
    limits.check_embed(req, request.app.state.config)
    annotate(request.state, model=req.model)
    result = await runs.embed(services(request), req)
    return OllamaJSONResponse({
        "model": req.model,
        "embeddings": [list(v) for v in result.vectors],
        "total_duration": result.total_duration,
        "load_duration": result.load_duration,
        "prompt_eval_count": result.prompt_eval_count,
    })


async def embeddings(request: Request) -> Response:
    req = parse_embeddings(await read_json(request))
    limits.check_embed(req, request.app.state.config)
    annotate(request.state, model=req.model)
    result = await runs.embed(services(request), req)
    return OllamaJSONResponse({"embedding": list(result.vectors[0]) if result.vectors else []})


def ps_item(running: Any) -> dict[str, Any]:
    model = running.model
    expires = running.expires_at or datetime.now(UTC) + _FOREVER
    return {
        "name": model.name.short,
        "model": model.name.short,
        "size": running.size,
        "digest": model.digest,
        "details": model.details(),
        "expires_at": rfc3339(expires),
        "size_vram": running.size_vram,
        "context_length": running.context_length,
        # llmd's own: the ggml CPU variant the runner loaded and the features it computes with
        **({"cpu": running.cpu.to_wire()} if running.cpu is not None else {}),
    }


async def ps(request: Request) -> Response:
    scheduler = request.app.state.scheduler
    running = list(scheduler.running()) if scheduler is not None else []
    never = datetime.max.replace(tzinfo=UTC)
    running.sort(key=lambda r: r.expires_at or never, reverse=True)  # latest expiry first
    return OllamaJSONResponse({"models": [ps_item(r) for r in running]})


routes: list[BaseRoute] = [
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/embed", embed, methods=["POST"]),
    Route("/api/embeddings", embeddings, methods=["POST"]),
    Route("/api/ps", ps, methods=["GET"]),
]
