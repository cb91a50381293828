"""OpenAI wire shapes to llmd's typed requests and back: pure functions, no I/O (openai/openai.go).

``*_from_openai`` turn a decoded OpenAI body into a native request value (raising InvalidRequest
with Ollama's wording); the ``*Stream`` classes and ``*_response`` functions turn llmd's
``Chunk``/``Final`` items into OpenAI objects. SSE framing is ``sse_frame``/``SSE_DONE``.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmd.api import body_fields as fields
from llmd.errors import InvalidRequest
from llmd.inference.values import (
    ChatRequest,
    Chunk,
    EmbedRequest,
    Final,
    Format,
    GenerateRequest,
    Message,
    Sampling,
    Think,
    Tool,
    ToolCall,
)

FINGERPRINT = "fp_ollama"
SSE_DONE = b"data: [DONE]\n\n"
_DATA_URL = re.compile(r"^data:(?:image/(?:jpeg|jpg|png|webp))?;base64,", re.IGNORECASE)
_REASONING = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high",
              "max": "max", "xhigh": "max", "ultra": "max"}


def sse_frame(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _id(prefix: str) -> str:
    return f"{prefix}-{random.randrange(999)}"  # Ollama's ids: a small random number


def _stop(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise InvalidRequest("invalid type for 'stop' field")


def _options(body: Mapping[str, Any], *, top_p_zero_is_default: bool = False) -> dict[str, Any]:
    """OpenAI sampling fields as Ollama options; temperature and top_p default to 1.0 as OpenAI's do."""
    options: dict[str, Any] = {}
    stop = _stop(body.get("stop"))
    if stop is not None:
        options["stop"] = stop
    max_tokens = fields.integer(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = fields.integer(body, "max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    temperature = fields.number(body, "temperature")
    options["temperature"] = 1.0 if temperature is None else temperature
    top_p = fields.number(body, "top_p")
    options["top_p"] = 1.0 if top_p is None or (top_p_zero_is_default and top_p == 0) else top_p
    for key in ("seed",):
        if (value := fields.integer(body, key)) is not None:
            options[key] = value
    for key in ("frequency_penalty", "presence_penalty"):
        if (value := fields.number(body, key)) is not None:
            options[key] = value
    return options


def _stream_options(body: Mapping[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("invalid value for 'stream': expected a boolean")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise InvalidRequest("invalid value for 'stream_options': expected an object")
    return bool(stream), bool(options.get("include_usage"))


def _n(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("n must be 1: llmd returns one choice per request")


def _format(body: Mapping[str, Any]) -> Format:
    response_format = body.get("response_format")
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise InvalidRequest("invalid value for 'response_format': expected an object")
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format json_schema needs a 'schema' object")
        return schema
    if kind in (None, "text"):
        return None
    raise InvalidRequest(f"invalid response_format type: {kind!r}")


def _think(body: Mapping[str, Any]) -> Think:
    effort = body.get("reasoning_effort")
    reasoning = body.get("reasoning")
    if effort is None and isinstance(reasoning, dict):
        effort = reasoning.get("effort")
    return think_from_effort(effort)


def think_from_effort(effort: object) -> Think:
    """OpenAI's reasoning effort as Ollama's ``think``: ``none`` turns thinking off."""
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in _REASONING:
        raise InvalidRequest(
            f"invalid reasoning value: '{effort}' (must be \"none\", \"minimal\", \"low\", \"medium\", "
            "\"high\", \"xhigh\" or \"max\")"
        )
    return _REASONING[effort]  # type: ignore[return-value]


def image_from_url(url: object) -> bytes:
    """The bytes of a base64 ``data:`` URL; a web URL is refused, as Ollama refuses it."""
    if not isinstance(url, str):
        raise InvalidRequest("invalid message format")
    match = _DATA_URL.match(url)
    if match is None:
        if url.startswith(("http://", "https://")):
            raise InvalidRequest(
                "image URLs are not currently supported, please use base64 encoded data instead"
            )
        raise InvalidRequest("invalid image input")
    try:
        return base64.b64decode(url[match.end():], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("invalid image input") from None


def _content(content: object) -> tuple[str, tuple[bytes, ...]]:
    """Text and images of a message's content: a string, or an array of typed parts."""
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise InvalidRequest("invalid message content type")
    texts: list[str] = []
    images: list[bytes] = []
    for part in content:
        if not isinstance(part, dict):
            raise InvalidRequest("invalid message format")
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            images.append(image_from_url(image.get("url") if isinstance(image, dict) else image))
        else:
            raise InvalidRequest("invalid message format")
    return "\n".join(texts), tuple(images)


def _tool_calls(value: object) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest("invalid tool call")
    calls = []
    for index, item in enumerate(value):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("invalid tool call")
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            raise InvalidRequest("invalid tool call arguments") from None
        if not isinstance(arguments, dict):
            raise InvalidRequest("invalid tool call arguments")
        calls.append(ToolCall(function["name"], arguments, str(item.get("id") or ""), index))
    return tuple(calls)


def message_from_openai(value: object, names: Mapping[str, str]) -> Message:
    if not isinstance(value, dict) or not isinstance(value.get("role"), str):
        raise InvalidRequest("invalid message format")
    content, images = _content(value.get("content"))
    call_id = str(value.get("tool_call_id") or "")
    reasoning = value.get("reasoning") or value.get("reasoning_content") or ""
    return Message(
        role=value["role"].lower(),
        content=content,
        thinking=reasoning if isinstance(reasoning, str) else "",
        images=images,
        tool_calls=_tool_calls(value.get("tool_calls")),
        tool_name=str(value.get("name") or names.get(call_id, "")),
        tool_call_id=call_id,
    )


def _messages(value: object) -> tuple[Message, ...]:
    if not isinstance(value, list):
        raise InvalidRequest("invalid message format")
    if not value:
        raise InvalidRequest("[] is too short - 'messages'")
    out: list[Message] = []
    names: dict[str, str] = {}  # a tool reply names its call's id; Ollama's templates want the name
    for item in value:
        message = message_from_openai(item, names)
        names.update({c.id: c.name for c in message.tool_calls if c.id})
        out.append(message)
    return tuple(out)


def _tools(body: Mapping[str, Any]) -> tuple[Tool, ...]:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise InvalidRequest("invalid value for 'tools': expected an array of objects")
    if choice == "none":
        return ()
    parsed = [Tool(str(t.get("type") or "function"), t.get("function") or {}) for t in tools]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        wanted = choice["function"].get("name")
        parsed = [t for t in parsed if t.name == wanted]
    return tuple(parsed)


def _logprobs(body: Mapping[str, Any]) -> tuple[bool, int]:
    top = fields.integer(body, "top_logprobs") or 0
    if not 0 <= top <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise InvalidRequest("invalid value for 'logprobs': expected a boolean")
    return bool(logprobs), top


@dataclass(frozen=True, slots=True)
class OpenAIRequest:
    """A native request plus what only the OpenAI rendering needs."""

    request: ChatRequest | GenerateRequest
    stream: bool
    include_usage: bool


def chat_request_from_openai(body: Mapping[str, Any]) -> OpenAIRequest:
    _n(body)
    stream, include_usage = _stream_options(body)
    logprobs, top = _logprobs(body)
    request = ChatRequest(
        model=fields.model(body),
        messages=_messages(body.get("messages")),
        tools=_tools(body),
        stream=stream,
        params=Sampling(
            options=_options(body), format=_format(body), think=_think(body),
            logprobs=logprobs, top_logprobs=top,
        ),
    )
    return OpenAIRequest(request, stream, include_usage)


def completion_request_from_openai(body: Mapping[str, Any]) -> OpenAIRequest:
    _n(body)
    prompt = body.get("prompt")
    prompt = "" if prompt is None else prompt  # null is absent, as for every other field
    if not isinstance(prompt, str):
        raise InvalidRequest("invalid type for 'prompt' field: only a string is supported")
    suffix = body.get("suffix") or ""
    if not isinstance(suffix, str):
        raise InvalidRequest("invalid type for 'suffix' field")
    stream, include_usage = _stream_options(body)
    top = fields.integer(body, "logprobs") or 0  # the legacy API's logprobs is a count
    request = GenerateRequest(
        model=fields.model(body),
        prompt=prompt,
        suffix=suffix,
        stream=stream,
        params=Sampling(
            options=_options(body, top_p_zero_is_default=True),
            logprobs=top > 0, top_logprobs=min(top, 20),
        ),
    )
    return OpenAIRequest(request, stream, include_usage)


def embed_request_from_openai(body: Mapping[str, Any]) -> tuple[EmbedRequest, str]:
    """The native request and the encoding_format (``float`` or ``base64``)."""
    value = body.get("input")
    if value == "":
        inputs: tuple[str, ...] = ("",)
    elif isinstance(value, str):
        inputs = (value,)
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        inputs = tuple(value)
    else:
        raise InvalidRequest("invalid input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequest(
            f"Invalid value for 'encoding_format' = {encoding}. Supported values: ['float', 'base64']."
        )
    dimensions = fields.integer(body, "dimensions") or 0
    return EmbedRequest(model=fields.model(body), inputs=inputs, dimensions=max(dimensions, 0)), encoding


# --- responses ---------------------------------------------------------------------------------


def _usage(final: Final | None) -> dict[str, Any]:
    # OpenAI counts the whole prompt in prompt_tokens, the part served from a cache included.
    cached = final.prompt_cached if final else 0
    prompt = (final.prompt_eval_count if final else 0) + cached
    completion = final.eval_count if final else 0
    return {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def tool_call_to_openai(call: ToolCall, index: int) -> dict[str, Any]:
    return {
        "id": call.id,
        "index": index,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
    }


def _finish_reason(final: Final, had_tool_calls: bool) -> str:
    if had_tool_calls and final.done_reason == "stop":
        return "tool_calls"
    return "length" if final.done_reason == "length" else "stop"


def _logprobs_to_openai(chunks: Sequence[Chunk]) -> dict[str, Any] | None:
    entries = [lp for c in chunks for lp in c.logprobs]
    if not entries:
        return None
    return {
        "content": [
            {
                "token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes) or None,
                "top_logprobs": [
                    {"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes) or None}
                    for t in lp.top_logprobs
                ],
            }
            for lp in entries
        ]
    }


def chat_response(model: str, chunks: Sequence[Chunk], final: Final) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` from everything a generation produced."""
    calls = [c for chunk in chunks for c in chunk.tool_calls]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(c.content for c in chunks)}
    reasoning = "".join(c.thinking for c in chunks)
    if reasoning:
        message["reasoning"] = reasoning
    if calls:
        message["tool_calls"] = [tool_call_to_openai(c, i) for i, c in enumerate(calls)]
    choice: dict[str, Any] = {
        "index": 0, "message": message, "finish_reason": _finish_reason(final, bool(calls)),
    }
    if (logprobs := _logprobs_to_openai(chunks)) is not None:
        choice["logprobs"] = logprobs
    return {
        "id": _id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": FINGERPRINT, "choices": [choice], "usage": _usage(final),
    }


@dataclass
class ChatStream:
    """Turns a generation's items into ``chat.completion.chunk`` objects, in OpenAI's order."""

    model: str
    include_usage: bool = False
    id: str = field(default_factory=lambda: _id("chatcmpl"))
    created: int = field(default_factory=lambda: int(time.time()))
    _sent_role: bool = False
    _tool_calls: int = 0

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "system_fingerprint": FINGERPRINT, "choices": choices, **extra,
        }

    def _delta(self, delta: dict[str, Any], logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self._sent_role:
            delta = {"role": "assistant", **delta}
            self._sent_role = True
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
        if logprobs is not None:
            choice["logprobs"] = logprobs
        return self._chunk([choice])

    def chunks(self, item: Chunk | Final) -> list[dict[str, Any]]:
        if isinstance(item, Final):
            return self.finish(item)
        out = []
        logprobs = _logprobs_to_openai([item])
        # Reasoning and content travel in separate chunks, as Ollama's toChunk splits them
        if item.thinking:
            out.append(self._delta({"reasoning": item.thinking}))
        if item.content or (logprobs and not item.tool_calls):
            out.append(self._delta({"content": item.content}, logprobs))
        if item.tool_calls:
            calls = [tool_call_to_openai(c, self._tool_calls + i) for i, c in enumerate(item.tool_calls)]
            self._tool_calls += len(calls)
            out.append(self._delta({"tool_calls": calls}))
        return out

    def finish(self, final: Final) -> list[dict[str, Any]]:
        out = []
        if not self._sent_role:  # an empty answer still announces its role
            out.append(self._delta({"content": ""}))
        reason = _finish_reason(final, self._tool_calls > 0)
        out.append(self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}]))
        if self.include_usage:
            out.append(self._chunk([], usage=_usage(final)))
        return out


def completion_response(model: str, chunks: Sequence[Chunk], final: Final) -> dict[str, Any]:
    return {
        "id": _id("cmpl"), "object": "text_completion", "created": int(time.time()), "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"text": "".join(c.content for c in chunks), "index": 0,
                     "finish_reason": _finish_reason(final, False), "logprobs": None}],
        "usage": _usage(final),
    }


@dataclass
class CompletionStream:
    model: str
    include_usage: bool = False
    id: str = field(default_factory=lambda: _id("cmpl"))
    created: int = field(default_factory=lambda: int(time.time()))

    def _chunk(self, text: str, reason: str | None) -> dict[str, Any]:
        return {
            "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"text": text, "index": 0, "finish_reason": reason, "logprobs": None}],
        }

    def chunks(self, item: Chunk | Final) -> list[dict[str, Any]]:
        if isinstance(item, Chunk):
            return [self._chunk(item.content, None)] if item.content else []
        out = [self._chunk("", _finish_reason(item, False))]
        if self.include_usage:
            usage = self._chunk("", None)
            usage["choices"] = []
            usage["usage"] = _usage(item)
            out.append(usage)
        return out


def encode_embedding(vector: Sequence[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return list(vector)


def embeddings_response(
    model: str, vectors: Iterable[Sequence[float]], prompt_tokens: int, encoding: str
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": encode_embedding(v, encoding), "index": i}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_object(name: str, created: int, namespace: str = "library") -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": namespace}


def models_list(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    # Go answers "data": null for an empty store; [] is what the openai package can iterate.
    return {"object": "list", "data": list(items)}
