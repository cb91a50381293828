"""Finding tool calls in what a model writes, in one piece or as it streams.

A call is a JSON object with ``name`` and ``arguments`` (or ``parameters``), or a list of them,
optionally in the OpenAI shape ``{"type": "function", "function": {...}}``. It may stand alone
or follow the tag the template shows around calls (``<tool_call>``, ``[TOOL_CALLS]``...), as
Ollama's tools parser infers it from the template. The streaming parser holds text back only
while it could still become a call, and releases it as soon as it cannot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Literal

from llmd.holdback import partial_suffix
from llmd.templates.gotemplate import compile_go
from llmd.templates.messages import ToolCall

# Tags that Hugging Face templates put around calls, in the order they are looked for.
_JINJA_TAGS = (
    ("<tool_call>", "</tool_call>"),
    ("[TOOL_CALLS]", ""),
    ("<|python_tag|>", ""),
    ("<|tool_call|>", ""),
    ("<function_call>", "</function_call>"),
)
# The first key of a call object; anything else means the JSON is not a call.
_CALL_KEYS = ("name", "arguments", "parameters", "function", "type", "id")
# Bounded, so that deciding costs the same however long the text held back has grown: a key
# longer than the longest call key, or a run of blanks no model writes there, is not a call.
_FIRST_KEY = re.compile(r'\s{0,64}(\[\s{0,64})?(\{\s{0,64}("((?:[^"\\]|\\.){0,16})("?))?)?')
# Unfinished candidates retried one character on at the end of output, before the rest is text.
_FINAL_RETRIES = 8
_SPACE = " \t\r\n"


def tool_call_tags(
    go_template: str | None, jinja_template: str | None
) -> tuple[str, str] | None:
    """(opening, closing) text around calls as the model's template writes them, if any."""
    if go_template:
        return compile_go(go_template).tool_call_tags()
    if jinja_template:
        for tags in _JINJA_TAGS:
            if tags[0] in jinja_template:
                return tags
    return None


def as_tool_calls(
    value: object, names: frozenset[str] = frozenset()
) -> tuple[ToolCall, ...] | None:
    """The calls ``value`` (parsed JSON) describes, or None if it is not a call at all."""
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(item, names) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return tuple(c for c in calls if c is not None)


def _as_call(item: object, names: frozenset[str]) -> ToolCall | None:
    if not isinstance(item, dict):
        return None
    call_id = item.get("id") if isinstance(item.get("id"), str) else None
    if isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    key = (
        "arguments"
        if "arguments" in item
        else "parameters"
        if "parameters" in item
        else None
    )
    if (
        not isinstance(name, str)
        or not name
        or key is None
        or (names and name not in names)
    ):
        return None
    args = item[key]
    if isinstance(args, str):  # OpenAI sends arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None
    return ToolCall(name=name, arguments=args, id=call_id)


_CLOSERS = {"{": "}", "[": "]"}


class _Scan:
    """Where the JSON value opening at ``start`` of a growing text ends, found incrementally:
    each character is looked at once, however many deltas the text arrives in."""

    def __init__(self, start: int) -> None:
        self.start = start
        self._pos = start
        self._stack: list[str] = []
        self._in_string = self._escaped = False
        self._end: int | None = None

    def end(self, text: str) -> int | None:
        """The end; None if it has not ended yet, -1 if broken."""
        if self._end is not None:
            return self._end
        stack = self._stack
        for i in range(self._pos, len(text)):
            c = text[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif c == "\\":
                    self._escaped = True
                elif c == '"':
                    self._in_string = False
            elif c == '"':
                self._in_string = True
            elif c in _CLOSERS:
                stack.append(_CLOSERS[c])
            elif c in "}]":
                if not stack or stack.pop() != c:
                    self._end = -1
                    return -1
                if not stack:
                    self._end = i + 1
                    return self._end
        self._pos = len(text)
        return None


def _could_be_call(text: str) -> bool:
    """Whether unfinished JSON at the start of ``text`` may still turn out to be a call."""
    m = _FIRST_KEY.match(text)
    assert m is not None
    key, closed = m.group(4), m.group(5)
    if closed:
        return key in _CALL_KEYS
    if m.end() < len(text):  # something other than `[`, `{` and the start of a key
        return False
    return key is None or any(k.startswith(key) for k in _CALL_KEYS)


Step = (
    tuple[Literal["call"], int, tuple[ToolCall, ...]]
    | tuple[Literal["wait"]]
    | tuple[Literal["text"], int]
)


class ToolCallParser:
    """Feed model output as it arrives; get back the text that is content and any calls found."""

    def __init__(
        self, tags: tuple[str, str] | None = None, tool_names: Iterable[str] = ()
    ) -> None:
        self.opening, self.closing = tags or ("", "")
        self.names = frozenset(tool_names)
        self.buffer = ""
        self._scan: _Scan | None = None  # of the candidate at the head of ``buffer``
        self._retries = 0

    def feed(self, delta: str) -> tuple[str, tuple[ToolCall, ...]]:
        self.buffer += delta
        return self._drain(final=False)

    def flush(self) -> tuple[str, tuple[ToolCall, ...]]:
        """The end of output: what is still held back is content unless it is a whole call."""
        return self._drain(final=True)

    def _consume(self, n: int) -> None:
        if n:
            self.buffer = self.buffer[n:]
            self._scan = None

    def _end_of(self, start: int) -> int | None:
        """The end of the JSON value at ``start`` of the buffer, carried on from the last delta."""
        if self._scan is None or self._scan.start != start:
            self._scan = _Scan(start)
        return self._scan.end(self.buffer)

    def _drain(self, final: bool) -> tuple[str, tuple[ToolCall, ...]]:
        text: list[str] = []
        calls: list[ToolCall] = []
        while self.buffer:
            start = self._candidate(final)
            if start is None:
                text.append(self.buffer)
                self._consume(len(self.buffer))
                break
            text.append(self.buffer[:start])
            self._consume(start)
            if final and self._retries >= _FINAL_RETRIES:
                text.append(self.buffer)  # nested unfinished candidates: bounded work at the end
                self._consume(len(self.buffer))
                break
            step = self._step(final)
            if step[0] == "wait":
                break
            if step[0] == "call":
                calls.extend(step[2])
            else:
                text.append(self.buffer[: step[1]])
            self._consume(step[1])
        return "".join(text), tuple(calls)

    def _candidate(self, final: bool) -> int | None:
        """The first place a call could begin: a tag, a bracket, or a tag cut off at the end."""
        buf = self.buffer
        if buf[:1] in ("{", "[") or (self.opening and buf.startswith(self.opening)):
            return 0  # the usual case while a call streams in: no search through what is held
        spots = [i for i in (buf.find("{"), buf.find("[")) if i >= 0]
        if self.opening:
            at = buf.find(self.opening)
            if at >= 0:
                spots.append(at)
            elif not final and (n := partial_suffix(buf, self.opening)):
                spots.append(len(buf) - n)
        return min(spots) if spots else None

    def _step(self, final: bool) -> Step:
        buf = self.buffer
        tag = self.opening
        if tag and buf.startswith(tag):
            return self._tagged(final)
        if tag and tag.startswith(buf):
            return ("text", len(buf)) if final else ("wait",)
        if not _could_be_call(buf):
            return ("text", 1)  # decided by its first characters: no need to scan the rest
        end = self._end_of(0)
        if end is None:
            if final:
                self._retries += 1
            return ("text", 1) if final else ("wait",)
        if end < 0:
            return ("text", 1)
        calls = self._decode(buf[:end])
        return ("call", end, calls) if calls else ("text", end)

    def _tagged(self, final: bool) -> Step:
        buf = self.buffer
        skip = len(self.opening)
        j = skip
        while j < len(buf) and buf[j] in _SPACE:
            j += 1
        if j == len(buf):
            return ("text", skip) if final else ("wait",)
        end = self._end_of(j) if buf[j] in "{[" else -1
        if end is None:
            return ("text", skip) if final else ("wait",)
        calls = self._decode(buf[j:end]) if end > 0 else None
        if not calls:
            return ("text", skip)
        k = end
        while k < len(buf) and buf[k] in _SPACE:
            k += 1
        if self.closing:
            if buf.startswith(self.closing, k):
                return ("call", k + len(self.closing), calls)
            if self.closing.startswith(buf[k:]) and not final:
                return ("wait",)  # the closing tag may still be on its way
        return ("call", k, calls)

    def _decode(self, text: str) -> tuple[ToolCall, ...] | None:
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return as_tool_calls(value, self.names)


def tool_call_parser(
    go_template: str | None, jinja_template: str | None, tool_names: Iterable[str] = ()
) -> ToolCallParser:
    """A streaming parser for the call syntax the template shows."""
    return ToolCallParser(tool_call_tags(go_template, jinja_template), tool_names)


def parse_tool_calls(
    text: str,
    *,
    go_template: str | None = None,
    jinja_template: str | None = None,
    tool_names: Iterable[str] = (),
) -> tuple[str, tuple[ToolCall, ...]]:
    """Split a whole model output into its content (calls removed) and its tool calls."""
    parser = tool_call_parser(go_template, jinja_template, tool_names)
    content, calls = parser.feed(text)
    rest, more = parser.flush()
    content, calls = content + rest, calls + more
    return (content.strip(), calls) if calls else (content, calls)
