"""Bodies of /api/generate, /api/chat, /api/embed and /api/embeddings, validated into frozen values.

Each ``parse_*`` takes the dict from ``errors.read_json`` (top-level keys lower-cased: Go matches
struct fields case-insensitively) and raises InvalidRequest with Ollama's wording. Unknown fields
are ignored, as Go's encoding/json does. Below this module nothing re-checks a type.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from llmd.api.gojson import field, type_error
from llmd.config import parse_keep_alive
from llmd.errors import InvalidRequest
from llmd.inference.values import (
    ChatRequest,
    EmbedRequest,
    Format,
    GenerateRequest,
    Message,
    Sampling,
    Think,
    Tool,
    ToolCall,
)

THINK_LEVELS = ("high", "medium", "low", "max")


def _lower_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in value.items()}


def parse_format(value: object) -> Format:
    """``"json"``, a schema object, or nothing; anything else is refused as llm/llama_server.go does."""
    if value is None or value == "":
        return None
    if value == "json":
        return "json"
    if isinstance(value, dict):
        return value
    raw = json.dumps(value)
    raise InvalidRequest(
        f'invalid format: {json.dumps(raw)}; expected "json" or a valid JSON Schema object'
    )


def parse_think(value: object) -> Think:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in THINK_LEVELS:
            return value  # type: ignore[return-value]
        raise InvalidRequest(
            f'invalid think value: "{value}" (must be "high", "medium", "low", "max", true, or false)'
        )
    raise InvalidRequest("think must be a boolean or string")


def _keep_alive(value: object) -> float | None:
    if value is None:
        return None
    try:
        return parse_keep_alive(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


def _images(body: Mapping[str, Any], where: str) -> tuple[bytes, ...]:
    out = []
    for item in field(body, "images", list, where) or ():
        if not isinstance(item, str):
            raise type_error(item, f"{where}.images", "string")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidRequest("illegal base64 data in images: send base64 without a data: prefix") from None
    return tuple(out)


def _sampling(body: Mapping[str, Any], where: str) -> Sampling:
    top = field(body, "top_logprobs", int, where) or 0
    if not 0 <= top <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")
    truncate = field(body, "truncate", bool, where)
    shift = field(body, "shift", bool, where)
    return Sampling(
        options=field(body, "options", dict, where) or {},
        keep_alive=_keep_alive(body.get("keep_alive")),
        format=parse_format(body.get("format")),
        think=parse_think(body.get("think")),
        truncate=True if truncate is None else truncate,
        shift=True if shift is None else shift,
        logprobs=bool(field(body, "logprobs", bool, where)),
        top_logprobs=top,
    )


def _stream(body: Mapping[str, Any], where: str) -> bool:
    value = field(body, "stream", bool, where)
    return True if value is None else value


def parse_generate(body: Mapping[str, Any]) -> GenerateRequest:
    where = "GenerateRequest"
    context = field(body, "context", list, where) or []
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in context):
        bad = next(t for t in context if not isinstance(t, int) or isinstance(t, bool))
        raise type_error(bad, f"{where}.context", "int")
    request = GenerateRequest(
        model=field(body, "model", str, where) or "",
        prompt=field(body, "prompt", str, where) or "",
        suffix=field(body, "suffix", str, where) or "",
        system=field(body, "system", str, where),
        template=field(body, "template", str, where),
        context=tuple(context),
        raw=bool(field(body, "raw", bool, where)),
        images=_images(body, where),
        stream=_stream(body, where),
        params=_sampling(body, where),
    )
    if request.raw and (request.template or request.system or request.context):
        raise InvalidRequest("raw mode does not support template, system, or context")
    return request


def _tool_call(value: object, index: int) -> ToolCall:
    where = "ChatRequest.messages.tool_calls"
    if not isinstance(value, dict):
        raise type_error(value, where, "map[string]interface {}")
    call = _lower_keys(value)
    function = _lower_keys(field(call, "function", dict, where) or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):  # OpenAI sends a JSON string; Ollama clients an object
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise InvalidRequest("tool call arguments must be a JSON object") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidRequest("tool call arguments must be a JSON object")
    explicit = field(function, "index", int, f"{where}.function")
    return ToolCall(
        name=field(function, "name", str, f"{where}.function") or "",
        arguments=arguments,
        id=field(call, "id", str, where) or "",
        index=index if explicit is None else explicit,
    )


def parse_message(value: object) -> Message:
    where = "ChatRequest.messages"
    if not isinstance(value, dict):
        raise type_error(value, where, "api.Message")
    fields = _lower_keys(value)
    calls = field(fields, "tool_calls", list, where) or []
    return Message(
        role=(field(fields, "role", str, where) or "").lower(),
        content=field(fields, "content", str, where) or "",
        thinking=field(fields, "thinking", str, where) or "",
        images=_images(fields, where),
        tool_calls=tuple(_tool_call(c, i) for i, c in enumerate(calls)),
        tool_name=field(fields, "tool_name", str, where) or "",
        tool_call_id=field(fields, "tool_call_id", str, where) or "",
    )


def parse_tool(value: object) -> Tool:
    where = "ChatRequest.tools"
    if not isinstance(value, dict):
        raise type_error(value, where, "api.Tool")
    fields = _lower_keys(value)
    function = field(fields, "function", dict, where) or {}
    if not isinstance(function.get("name", ""), str):
        raise type_error(function["name"], f"{where}.function.name", "string")
    return Tool(type=field(fields, "type", str, where) or "function", function=function)


def parse_chat(body: Mapping[str, Any]) -> ChatRequest:
    where = "ChatRequest"
    model = field(body, "model", str, where) or ""
    if not model:
        raise InvalidRequest("model is required")
    return ChatRequest(
        model=model,
        messages=tuple(parse_message(m) for m in field(body, "messages", list, where) or []),
        tools=tuple(parse_tool(t) for t in field(body, "tools", list, where) or []),
        stream=_stream(body, where),
        params=_sampling(body, where),
    )


def _required_model(body: Mapping[str, Any], where: str) -> str:
    model = field(body, "model", str, where) or ""
    if not model:
        raise InvalidRequest("model is required")
    return model


def parse_embed(body: Mapping[str, Any]) -> EmbedRequest:
    where = "EmbedRequest"
    model = _required_model(body, where)
    value = body.get("input")
    if isinstance(value, str):
        inputs: tuple[str, ...] = (value,) if value else ()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        inputs = tuple(value)
    elif value is None:
        inputs = ()
    else:
        raise InvalidRequest("invalid input type")
    truncate = field(body, "truncate", bool, where)
    dimensions = field(body, "dimensions", int, where) or 0
    if dimensions < 0:
        raise InvalidRequest("dimensions must be a positive number")
    return EmbedRequest(
        model=model,
        inputs=inputs,
        truncate=True if truncate is None else truncate,
        dimensions=dimensions,
        options=field(body, "options", dict, where) or {},
        keep_alive=_keep_alive(body.get("keep_alive")),
    )


def parse_embeddings(body: Mapping[str, Any]) -> EmbedRequest:
    """The legacy /api/embeddings body: one ``prompt``, answered with one raw vector."""
    where = "EmbeddingRequest"
    model = _required_model(body, where)
    prompt = field(body, "prompt", str, where) or ""
    return EmbedRequest(
        model=model,
        inputs=(prompt,) if prompt else (),
        options=field(body, "options", dict, where) or {},
        keep_alive=_keep_alive(body.get("keep_alive")),
    )
