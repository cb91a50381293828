"""OpenAI Responses bodies to a native chat request and back: pure functions, no I/O.

Stateless, as Ollama's /v1/responses is (openai/responses.go): the whole conversation comes in
``input`` each time, nothing is stored, so ``previous_response_id``, ``conversation`` and
``background`` are refused. The request body, as ``responses_request`` validates it:

- ``model`` (string, required): the model to run.
- ``input`` (string or array of items, required): a string is one user message. Items are
  ``message`` (role ``user``, ``system``, ``developer`` or ``assistant``; content a string or
  ``input_text``/``output_text``/``input_image`` parts), ``function_call`` (``call_id``,
  ``name``, ``arguments`` as a JSON string), ``function_call_output`` (``call_id``, ``output``)
  and ``reasoning`` (``summary``, ``encrypted_content``).
- ``instructions`` (string): a system message before the input.
- ``max_output_tokens`` (integer): ``num_predict``.
- ``temperature``, ``top_p`` (numbers): sampling; temperature defaults to 1.0 as OpenAI's does.
- ``text.format`` (object): ``{"type": "text"}``, ``{"type": "json_object"}`` or
  ``{"type": "json_schema", "name", "schema", "strict"}``.
- ``tools`` (array): ``{"type": "function", "name", "description", "parameters", "strict"}`` only.
- ``tool_choice`` (string or object): ``auto`` offers the tools, ``none`` drops them,
  ``required`` forces a call of one, ``{"type": "function", "name"}`` a call of that one
  (llmd.inference.tool_choice).
- ``reasoning.effort`` (string): ``think``; ``none`` off, ``minimal``/``low``, ``medium``,
  ``high``, ``xhigh``/``max``.
- ``stream`` (boolean): SSE with the Responses event sequence.
- ``store``, ``include``, ``metadata``, ``truncation``, ``parallel_tool_calls``: accepted, echoed
  or ignored.

``ResponseStream`` turns a generation's items into that event sequence; the non-streamed answer
is the ``response`` of its last event, so both shapes come from one piece of code.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmd.api import body_fields as fields
from llmd.errors import InvalidRequest
from llmd.inference.values import (
    ChatRequest, Chunk, Final, Format, Message, Output, Sampling, Tool, ToolCall,
)
from llmd.api.openai_convert import image_from_url, think_from_effort
from llmd.inference.tool_choice import forced_call_schema

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
Event = tuple[str, dict[str, Any]]  # (event name, data)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """The native chat request and what the response object repeats back to the client."""

    chat: ChatRequest
    stream: bool
    echo: Mapping[str, Any]  # instructions, tools, text, temperature, ...: OpenAI echoes them


# --- request ---------------------------------------------------------------------------------


def _refuse_state(body: Mapping[str, Any]) -> None:
    if body.get("previous_response_id"):
        raise InvalidRequest(
            "previous_response_id is not supported: llmd does not store responses, "
            "send the whole conversation in 'input'"
        )
    if body.get("conversation"):
        raise InvalidRequest(
            "conversation is not supported: llmd does not store conversations, "
            "send the whole conversation in 'input'"
        )
    if fields.boolean(body, "background"):
        raise InvalidRequest("background is not supported: llmd answers every response in the request")


def _text(part: Mapping[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}: a '{part.get('type')}' part needs a string 'text'")
    return text


def _content(content: object, where: str) -> tuple[str, tuple[bytes, ...]]:
    """The text and images of a message's content or a function call's output."""
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: content must be a string or an array")
    texts: list[str] = []
    images: list[bytes] = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            raise InvalidRequest(f"{where}.content[{i}]: expected an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            texts.append(_text(part, f"{where}.content[{i}]"))
        elif kind == "input_image":
            if part.get("image_url") is None:
                raise InvalidRequest(f"{where}.content[{i}]: only 'image_url' images are supported")
            images.append(image_from_url(part["image_url"]))
        elif kind == "input_file":
            raise InvalidRequest("file inputs are not currently supported")
        else:
            raise InvalidRequest(f"{where}.content[{i}]: unknown content type: {kind}")
    return "".join(texts), tuple(images)


def _function_call(item: Mapping[str, Any], where: str) -> ToolCall:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}: a function_call needs a 'name'")
    raw = item.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise InvalidRequest(f"{where}: failed to parse function call arguments") from None
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{where}: function call arguments must be a JSON object")
    return ToolCall(name, arguments, str(item.get("call_id") or ""))


def _reasoning_text(item: Mapping[str, Any]) -> str:
    # Ollama sends its reasoning back as plain text in encrypted_content; the summary is the same
    content = item.get("encrypted_content")
    if isinstance(content, str) and content:
        return content
    summary = item.get("summary")
    if not isinstance(summary, list):
        return ""
    return "".join(str(s.get("text") or "") for s in summary if isinstance(s, dict))


def _messages(body: Mapping[str, Any]) -> tuple[Message, ...]:
    messages: list[Message] = []
    instructions = fields.string(body, "instructions")
    if instructions:
        messages.append(Message(role="system", content=instructions))
    value = body.get("input")
    if isinstance(value, str):
        if value:
            messages.append(Message(role="user", content=value))
        return tuple(messages)
    if value is None:
        raise InvalidRequest("input is required")
    if not isinstance(value, list):
        raise InvalidRequest("input must be a string or an array of items")
    names: dict[str, str] = {}  # call_id -> function name, for the tool messages' templates
    thinking = ""  # a reasoning item belongs to the assistant turn that follows it
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where}: expected an object")
        kind = item.get("type") or ("message" if item.get("role") else None)
        if kind == "message":
            role = _ROLES.get(str(item.get("role")))
            if role is None:
                raise InvalidRequest(f"{where}: invalid role {item.get('role')!r}")
            text, images = _content(item.get("content"), where)
            think = thinking if role == "assistant" else ""
            thinking = "" if role == "assistant" else thinking
            messages.append(Message(role=role, content=text, images=images, thinking=think))
        elif kind == "function_call":
            call = _function_call(item, where)
            names[call.id] = call.name
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":  # calls of one turn share a message
                call = ToolCall(call.name, call.arguments, call.id, len(last.tool_calls))
                messages[-1] = Message(role="assistant", content=last.content, images=last.images,
                                       thinking=last.thinking or thinking,
                                       tool_calls=(*last.tool_calls, call))
            else:
                messages.append(Message(role="assistant", thinking=thinking, tool_calls=(call,)))
            thinking = ""
        elif kind == "function_call_output":
            call_id = str(item.get("call_id") or "")
            text, images = _content(item.get("output"), where)
            messages.append(Message(role="tool", content=text, images=images,
                                    tool_call_id=call_id, tool_name=names.get(call_id, "")))
        elif kind == "reasoning":
            thinking = _reasoning_text(item)
        elif kind is None:
            raise InvalidRequest(f"{where}: input item missing required 'type' field")
        else:
            raise InvalidRequest(f"{where}: unknown input item type: {kind!r}")
    if thinking:
        messages.append(Message(role="assistant", thinking=thinking))
    return tuple(messages)


def _tools(body: Mapping[str, Any]) -> tuple[Tool, ...]:
    out: list[Tool] = []
    for i, tool in enumerate(fields.objects(body, "tools")):
        if tool.get("type") != "function":
            raise InvalidRequest(
                f"tools[{i}]: tool type {tool.get('type')!r} is not supported: only 'function' tools are"
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"tools[{i}]: a function tool needs a 'name'")
        function = {"name": tool["name"], "description": tool.get("description") or "",
                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        out.append(Tool("function", function))
    return tuple(out)


def _tool_choice(body: Mapping[str, Any], tools: tuple[Tool, ...]) -> tuple[tuple[Tool, ...], Format]:
    """The tools to offer and, when a call is required, the format that forces one."""
    choice = body.get("tool_choice")
    if choice == "none":
        return (), None
    if isinstance(choice, dict) and choice.get("type") == "function":
        tools = tuple(t for t in tools if t.name == choice.get("name"))
        if not tools:
            raise InvalidRequest(f"tool_choice names {choice.get('name')!r}, which is not in 'tools'")
        return tools, forced_call_schema(tools)
    if choice == "required" and tools:
        return tools, forced_call_schema(tools)
    if choice not in (None, "auto", "required"):
        raise InvalidRequest(f"invalid tool_choice: {choice!r}")
    return tools, None


def _format(body: Mapping[str, Any]) -> Format:
    text = fields.obj(body, "text") or {}
    spec = fields.obj(text, "format")
    kind = spec.get("type") if spec else None
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = spec.get("schema") if spec else None
        if not isinstance(schema, dict):
            raise InvalidRequest("text.format json_schema needs a 'schema' object")
        return schema
    raise InvalidRequest(f"invalid text.format type: {kind!r}")


def _options(body: Mapping[str, Any]) -> dict[str, Any]:
    temperature = fields.number(body, "temperature")
    options: dict[str, Any] = {"temperature": 1.0 if temperature is None else temperature}
    # top_p is left to the model when absent, as Ollama leaves it
    if (top_p := fields.number(body, "top_p")) is not None:
        options["top_p"] = top_p
    if (max_tokens := fields.integer(body, "max_output_tokens")) is not None:
        options["num_predict"] = max_tokens
    return options


def _echo(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields a response object repeats, with OpenAI's defaults."""
    reasoning = fields.obj(body, "reasoning")
    text = fields.obj(body, "text") or {}
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
        if reasoning else None,
        "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "text": {"format": text.get("format") or {"type": "text"}},
        "tools": list(body.get("tools") or []),
        "tool_choice": body.get("tool_choice") or "auto",
        "truncation": body.get("truncation") or "disabled",
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "metadata": body.get("metadata") or {},
    }


def responses_request(body: Mapping[str, Any]) -> ResponsesRequest:
    """A /v1/responses body (see the module's table) as a native chat request."""
    _refuse_state(body)
    model = fields.model(body)
    messages = _messages(body)
    if not messages:
        raise InvalidRequest("input is required")
    reasoning = fields.obj(body, "reasoning") or {}
    stream = bool(fields.boolean(body, "stream"))
    tools, forced = _tool_choice(body, _tools(body))
    chat = ChatRequest(
        model=model, messages=messages, tools=tools, stream=stream,
        params=Sampling(options=_options(body), format=_format(body) or forced,
                        think=think_from_effort(reasoning.get("effort"))),
    )
    return ResponsesRequest(chat, stream, _echo(body))


# --- response --------------------------------------------------------------------------------


def _usage(final: Final) -> dict[str, Any]:
    # OpenAI counts the whole prompt in input_tokens, the part served from a cache included.
    prompt = final.prompt_eval_count + final.prompt_cached
    return {
        "input_tokens": prompt,
        "output_tokens": final.eval_count,
        "total_tokens": prompt + final.eval_count,
        "input_tokens_details": {"cached_tokens": final.prompt_cached},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


@dataclass
class ResponseStream:
    """A generation's items as Responses events, in OpenAI's order.

    Output items open as their first piece arrives: reasoning first, then the message text, then
    one ``function_call`` item per tool call. Text that follows a tool call is dropped, as Ollama
    drops it: the turn has become a call.
    """

    request: ResponsesRequest
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    output: list[dict[str, Any]] = field(default_factory=list)
    _sequence: int = 0
    _reasoning: dict[str, Any] | None = None
    _message: dict[str, Any] | None = None
    _called: bool = False

    def _event(self, name: str, **data: Any) -> Event:
        event = (name, {"type": name, "sequence_number": self._sequence, **data})
        self._sequence += 1
        return event

    def response(self, status: str, final: Final | None = None) -> dict[str, Any]:
        incomplete = final is not None and final.done_reason == "length"
        return {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": "incomplete" if incomplete else status,
            "completed_at": int(time.time()) if final is not None else None,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "model": self.request.chat.model, "output": list(self.output),
            "previous_response_id": None, "store": False, "background": False,
            "usage": _usage(final) if final is not None else None,
            "service_tier": "default", "presence_penalty": 0, "frequency_penalty": 0,
            "top_logprobs": 0, "max_tool_calls": None, "safety_identifier": None,
            "prompt_cache_key": None, **self.request.echo,
        }

    def _start(self) -> list[Event]:
        if self._sequence:
            return []
        created = self.response("in_progress")
        return [self._event("response.created", response=created),
                self._event("response.in_progress", response=created)]

    def events(self, item: Output) -> list[Event]:
        """The events ``item`` completes; the first call opens with ``response.created``."""
        out = self._start()
        if isinstance(item, Final):
            return out + self.finish(item)
        if item.thinking:
            out += self._think(item.thinking)
        if item.content and not self._called:
            out += self._write(item.content)
        for call in item.tool_calls:
            out += self._call(call)
        return out

    def _index(self, item: dict[str, Any] | None) -> int:
        return next(i for i, it in enumerate(self.output) if it is item)

    def _think(self, text: str) -> list[Event]:
        out: list[Event] = []
        if self._reasoning is None:
            self._reasoning = {"id": new_id("rs"), "type": "reasoning", "summary": []}
            self.output.append(self._reasoning)
            out.append(self._event("response.output_item.added", output_index=len(self.output) - 1,
                                   item={**self._reasoning, "summary": []}))
            self._reasoning["summary"] = [{"type": "summary_text", "text": ""}]
            out.append(self._event("response.reasoning_summary_part.added", item_id=self._reasoning["id"],
                                   output_index=len(self.output) - 1, summary_index=0,
                                   part={"type": "summary_text", "text": ""}))
        self._reasoning["summary"][0]["text"] += text
        out.append(self._event("response.reasoning_summary_text.delta", item_id=self._reasoning["id"],
                               output_index=self._index(self._reasoning), summary_index=0, delta=text))
        return out

    def _close_reasoning(self) -> list[Event]:
        item, self._reasoning = self._reasoning, None
        if item is None or item.get("encrypted_content") is not None:
            return []
        text = item["summary"][0]["text"]
        item["encrypted_content"] = text  # Ollama's way back in: the client returns it as input
        index = self._index(item)
        return [
            self._event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                        summary_index=0, text=text),
            self._event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                        summary_index=0, part={"type": "summary_text", "text": text}),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def _write(self, text: str) -> list[Event]:
        out = self._close_reasoning()
        if self._message is None:
            self._message = {"id": new_id("msg"), "type": "message", "status": "in_progress",
                             "role": "assistant", "content": []}
            self.output.append(self._message)
            index = len(self.output) - 1
            out.append(self._event("response.output_item.added", output_index=index,
                                   item={**self._message, "content": []}))
            self._message["content"].append(_text_part(""))
            out.append(self._event("response.content_part.added", item_id=self._message["id"],
                                   output_index=index, content_index=0, part=_text_part("")))
        self._message["content"][0]["text"] += text
        out.append(self._event("response.output_text.delta", item_id=self._message["id"],
                               output_index=self._index(self._message), content_index=0, delta=text,
                               logprobs=[]))
        return out

    def _close_message(self) -> list[Event]:
        item, self._message = self._message, None
        if item is None:
            return []
        item["status"] = "completed"
        index = self._index(item)
        text = item["content"][0]["text"]
        return [
            self._event("response.output_text.done", item_id=item["id"], output_index=index,
                        content_index=0, text=text, logprobs=[]),
            self._event("response.content_part.done", item_id=item["id"], output_index=index,
                        content_index=0, part=_text_part(text)),
            self._event("response.output_item.done", output_index=index,
                        item={**item, "content": [_text_part(text)]}),
        ]

    def _call(self, call: ToolCall) -> list[Event]:
        out = self._close_reasoning() + self._close_message()
        self._called = True
        arguments = json.dumps(call.arguments, ensure_ascii=False)
        item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress",
                "call_id": call.id, "name": call.name, "arguments": ""}
        self.output.append(item)
        index = len(self.output) - 1
        out.append(self._event("response.output_item.added", output_index=index, item=dict(item)))
        out.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                               output_index=index, delta=arguments))
        out.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                               output_index=index, arguments=arguments))
        item.update(status="completed", arguments=arguments)
        out.append(self._event("response.output_item.done", output_index=index, item=dict(item)))
        return out

    def failed(self, code: str, message: str) -> list[Event]:
        """The events that end a stream which failed after it started: ``response.failed``."""
        out = self._start()
        failed = {**self.response("failed"), "error": {"code": code, "message": message}}
        return [*out, self._event("response.failed", response=failed)]

    def finish(self, final: Final) -> list[Event]:
        out = self._close_reasoning() + self._close_message()
        if not self.output:  # an empty answer is still one message, as OpenAI sends it
            out += self._write("")[:-1] + self._close_message()
        done = self.response("completed", final)
        name = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
        return [*out, self._event(name, response=done)]


def response_object(request: ResponsesRequest, chunks: Sequence[Chunk], final: Final) -> dict[str, Any]:
    """The non-streamed response: what the stream's last event would carry."""
    stream = ResponseStream(request)
    for chunk in chunks:
        stream.events(chunk)
    return stream.events(final)[-1][1]["response"]
