"""Anthropic Messages bodies to a native chat request and back: pure functions, no I/O.

What ``anthropic`` SDK clients and Claude-Code-style agents send, as Ollama's anthropic package
reads it (anthropic/anthropic.go). The request body, as ``messages_request`` validates it:

- ``model`` (string, required): the model to run.
- ``max_tokens`` (integer > 0, required): ``num_predict``.
- ``messages`` (array, required): ``{"role": "user" | "assistant", "content": string | blocks}``;
  blocks are ``text``, ``image`` (base64 source), ``tool_use`` (``id``, ``name``, ``input``),
  ``tool_result`` (``tool_use_id``, ``content`` a string or text/image blocks, ``is_error``),
  ``thinking`` and ``redacted_thinking``.
- ``system`` (string or text blocks): a system message first.
- ``stop_sequences`` (array of strings): ``stop``.
- ``temperature``, ``top_p``, ``top_k`` (numbers): sampling; absent ones keep the model's defaults.
- ``tools`` (array): client tools ``{"name", "description", "input_schema"}``; server tools are
  refused.
- ``tool_choice`` (object): ``auto`` offers the tools, ``none`` drops them, ``any`` forces a call
  of one, ``tool`` a call of the one named (llmd.inference.tool_choice).
- ``thinking`` (object): ``{"type": "enabled" | "adaptive"}`` thinks, ``disabled`` does not;
  ``budget_tokens`` is not enforced. A model that cannot think ignores it.
- ``output_config.effort`` (string): a thinking level when ``thinking`` is absent.
- ``stream`` (boolean): SSE with Anthropic's event sequence.
- ``metadata``, ``cache_control``: accepted and ignored.

``/v1/messages/count_tokens`` takes the same body without ``max_tokens``. ``MessageStream`` turns
a generation's items into Anthropic's events; the non-streamed message is the one it builds.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmd.api import body_fields as fields
from llmd.errors import InvalidRequest
from llmd.inference.values import (
    ChatRequest,
    Chunk,
    Final,
    Format,
    Message,
    Output,
    Sampling,
    Think,
    Tool,
    ToolCall,
)
from llmd.inference.tool_choice import forced_call_schema

Event = tuple[str, dict[str, Any]]  # (event name, data)
_LEVELS = ("low", "medium", "high", "max")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"  # Ollama's generateID: 12 random bytes in hex


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    chat: ChatRequest
    stream: bool


# --- request ---------------------------------------------------------------------------------


def _text_of(blocks: Sequence[Any], where: str) -> str:
    texts = []
    for i, block in enumerate(blocks):
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}[{i}]: only text blocks are supported here")
        texts.append(text)
    return "\n".join(texts)


def _system(value: object) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        return _text_of(value, "system")
    raise InvalidRequest("system must be a string or an array of text blocks")


def _image(block: Mapping[str, Any], where: str) -> bytes:
    source = block.get("source")
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}: invalid image source")
    if source.get("type") != "base64":
        raise InvalidRequest(
            f"{where}: invalid image source type: {source.get('type')}. Only base64 images are supported."
        )
    try:
        return base64.b64decode(str(source.get("data") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}: invalid base64 image data") from None


def _tool_result(block: Mapping[str, Any], where: str) -> tuple[str, tuple[bytes, ...]]:
    content = block.get("content")
    if content is None or isinstance(content, str):
        return content or "", ()
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: tool_result content must be a string or an array of blocks")
    texts: list[str] = []
    images: list[bytes] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image":
            images.append(_image(part, f"{where}.content[{i}]"))
        else:
            raise InvalidRequest(f"{where}.content[{i}]: tool_result takes text and image blocks")
    return "\n".join(texts), tuple(images)


def _tool_use(block: Mapping[str, Any], where: str, index: int) -> ToolCall:
    if not block.get("id"):
        raise InvalidRequest(f"{where}: tool_use block missing required 'id' field")
    if not isinstance(block.get("name"), str) or not block["name"]:
        raise InvalidRequest(f"{where}: tool_use block missing required 'name' field")
    arguments = block.get("input") or {}
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{where}: tool_use input must be an object")
    return ToolCall(block["name"], arguments, str(block["id"]), index)


def _message(value: object, where: str, names: dict[str, str]) -> list[Message]:
    """One Anthropic message as native messages: its tool results become ``tool`` messages."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: expected an object")
    role = value.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{where}: invalid role {role!r}: messages take \"user\" or \"assistant\"")
    content = value.get("content")
    if isinstance(content, str):
        return [Message(role=role, content=content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: content must be a string or an array of blocks")
    texts: list[str] = []
    images: list[bytes] = []
    calls: list[ToolCall] = []
    thinking = ""
    results: list[Message] = []
    for i, block in enumerate(content):
        at = f"{where}.content[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise InvalidRequest(f"{at}: a text block needs a string 'text'")
            texts.append(block["text"])
        elif kind == "image":
            images.append(_image(block, at))
        elif kind == "tool_use":
            call = _tool_use(block, at, len(calls))
            names[call.id] = call.name
            calls.append(call)
        elif kind == "tool_result":
            call_id = str(block.get("tool_use_id") or "")
            text, result_images = _tool_result(block, at)
            results.append(Message(role="tool", content=text, images=result_images,
                                   tool_call_id=call_id, tool_name=names.get(call_id, "")))
        elif kind == "thinking":
            thinking = str(block.get("thinking") or "")
        elif kind == "redacted_thinking":
            continue  # encrypted by Anthropic's servers: nothing a local model can read
        elif kind == "document":
            raise InvalidRequest(f"{at}: document blocks (PDF) are not supported")
        else:
            raise InvalidRequest(f"{at}: unsupported content block type {kind!r}")
    own = []
    if texts or images or calls or thinking:
        own.append(Message(role=role, content="".join(texts), images=tuple(images),
                           tool_calls=tuple(calls), thinking=thinking))
    # a user turn answers the calls before it says more, so its results come first
    return results + own if role == "user" else own + results


def _messages(value: object) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("messages is required")
    names: dict[str, str] = {}  # tool_use id -> tool name, for the tool messages' templates
    out: list[Message] = []
    for i, item in enumerate(value):
        out += _message(item, f"messages[{i}]", names)
    return tuple(out)


def _tools(body: Mapping[str, Any]) -> tuple[Tool, ...]:
    out: list[Tool] = []
    for i, tool in enumerate(fields.objects(body, "tools")):
        if tool.get("type") not in (None, "custom"):
            raise InvalidRequest(
                f"tools[{i}]: tool type {tool.get('type')!r} is not supported: llmd runs no server tools"
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"tools[{i}]: a tool needs a 'name'")
        schema = tool.get("input_schema") or {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise InvalidRequest(f"invalid input_schema for tool {tool['name']!r}")
        out.append(Tool("function", {"name": tool["name"], "description": tool.get("description") or "",
                                     "parameters": schema}))
    return tuple(out)


def _tool_choice(body: Mapping[str, Any], tools: tuple[Tool, ...]) -> tuple[tuple[Tool, ...], Format]:
    """The tools to offer and, when a call is required, the format that forces one."""
    choice = fields.obj(body, "tool_choice") or {}
    kind = choice.get("type")
    if kind == "none":
        return (), None
    if kind == "tool":
        tools = tuple(t for t in tools if t.name == choice.get("name"))
        if not tools:
            raise InvalidRequest(f"tool_choice names {choice.get('name')!r}, which is not in 'tools'")
    if kind in ("any", "tool") and tools:
        return tools, forced_call_schema(tools)
    if kind not in (None, "auto", "any"):
        raise InvalidRequest(f"invalid tool_choice type {kind!r}")
    return tools, None


def _think(body: Mapping[str, Any]) -> Think:
    thinking = fields.obj(body, "thinking")
    if thinking is not None:
        kind = thinking.get("type")
        if kind in ("enabled", "adaptive"):
            return True
        if kind == "disabled":
            return False
        raise InvalidRequest(f"invalid thinking type {kind!r}: expected \"enabled\" or \"disabled\"")
    effort = (fields.obj(body, "output_config") or {}).get("effort")
    if isinstance(effort, str):
        level = "high" if effort.strip().lower() == "xhigh" else effort.strip().lower()
        if level in _LEVELS:
            return level  # type: ignore[return-value]
    return None


def _options(body: Mapping[str, Any], max_tokens: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    for key in ("temperature", "top_p"):
        if (value := fields.number(body, key)) is not None:
            options[key] = value
    if (top_k := fields.integer(body, "top_k")) is not None:
        options["top_k"] = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("invalid value for 'stop_sequences': expected an array of strings")
        if stop:
            options["stop"] = list(stop)
    return options


def _chat(body: Mapping[str, Any], max_tokens: int | None, stream: bool) -> ChatRequest:
    model = fields.model(body)
    messages = _messages(body.get("messages"))
    system = _system(body.get("system"))
    if system:
        messages = (Message(role="system", content=system), *messages)
    tools, forced = _tool_choice(body, _tools(body))
    return ChatRequest(
        model=model, messages=messages, tools=tools, stream=stream, relax_thinking=True,
        params=Sampling(options=_options(body, max_tokens), think=_think(body), format=forced),
    )


def messages_request(body: Mapping[str, Any]) -> MessagesRequest:
    """A /v1/messages body (see the module's table) as a native chat request."""
    fields.model(body)  # Ollama checks model, then max_tokens, then messages
    max_tokens = fields.integer(body, "max_tokens")
    if max_tokens is None or max_tokens <= 0:
        raise InvalidRequest("max_tokens is required and must be positive")
    stream = bool(fields.boolean(body, "stream"))
    return MessagesRequest(_chat(body, max_tokens, stream), stream)


def count_tokens_request(body: Mapping[str, Any]) -> ChatRequest:
    """A /v1/messages/count_tokens body: a Messages body without ``max_tokens``."""
    return _chat(body, None, False)


# --- response --------------------------------------------------------------------------------


def _stop_reason(final: Final, called: bool) -> str:
    if called:
        return "tool_use"
    if final.stop_sequence:
        return "stop_sequence"
    return "max_tokens" if final.done_reason == "length" else "end_turn"


@dataclass
class MessageStream:
    """A generation's items as Anthropic's events, building the message they describe.

    Blocks open as their first piece arrives and close when a block of another kind opens:
    thinking, then text, then one ``tool_use`` block per call (each sent whole).
    """

    model: str
    id: str = field(default_factory=lambda: new_id("msg"))
    content: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    stop_reason: str | None = None
    stop_sequence: str | None = None
    _open: dict[str, Any] | None = None
    _started: bool = False

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [dict(b) for b in self.content], "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence, "usage": dict(self.usage),
        }

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [("message_start", {"type": "message_start", "message": {**self.message(), "content": []}}),
                ("ping", {"type": "ping"})]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": len(self.content) - 1})]

    def _block(self, kind: str, text: str) -> list[Event]:
        """Add ``text`` to the open ``kind`` block (thinking or text), opening it first."""
        out: list[Event] = []
        if self._open is None or self._open["type"] != kind:
            out += self._close()
            self._open = {"type": kind, kind: ""}
            if kind == "thinking":
                self._open["signature"] = ""
            self.content.append(self._open)
            out.append(("content_block_start", {"type": "content_block_start", "index": len(self.content) - 1,
                                                "content_block": dict(self._open)}))
        self._open[kind] += text
        delta = {"type": f"{kind}_delta", kind: text}
        out.append(("content_block_delta", {"type": "content_block_delta", "index": len(self.content) - 1,
                                            "delta": delta}))
        return out

    def _tool_use(self, call: ToolCall) -> list[Event]:
        out = self._close()
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.arguments)}
        self.content.append(block)
        index = len(self.content) - 1
        partial = json.dumps(call.arguments, ensure_ascii=False)
        return [
            *out,
            ("content_block_start", {"type": "content_block_start", "index": index,
                                     "content_block": {**block, "input": {}}}),
            ("content_block_delta", {"type": "content_block_delta", "index": index,
                                     "delta": {"type": "input_json_delta", "partial_json": partial}}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]

    def events(self, item: Output) -> list[Event]:
        """The events ``item`` completes; the first call opens with ``message_start``."""
        out = self._start()
        if isinstance(item, Final):
            return out + self._finish(item)
        if item.thinking:
            out += self._block("thinking", item.thinking)
        if item.content:
            out += self._block("text", item.content)
        for call in item.tool_calls:
            out += self._tool_use(call)
        return out

    def _finish(self, final: Final) -> list[Event]:
        out = self._close()
        self.stop_reason = _stop_reason(final, any(b["type"] == "tool_use" for b in self.content))
        self.stop_sequence = final.stop_sequence if self.stop_reason == "stop_sequence" else None
        # Anthropic's input_tokens leaves out what a cache served: that is cache_read_input_tokens.
        self.usage = {"input_tokens": final.prompt_eval_count, "output_tokens": final.eval_count}
        if final.prompt_cached:
            self.usage["cache_read_input_tokens"] = final.prompt_cached
        return [*out,
                ("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": self.stop_reason,
                                             "stop_sequence": self.stop_sequence},
                                   "usage": dict(self.usage)}),
                ("message_stop", {"type": "message_stop"})]


def message_object(model: str, chunks: Sequence[Chunk], final: Final) -> dict[str, Any]:
    """The non-streamed message: what the stream's events add up to."""
    stream = MessageStream(model)
    for chunk in chunks:
        stream.events(chunk)
    stream.events(final)
    return stream.message()
