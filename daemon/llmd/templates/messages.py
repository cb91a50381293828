"""The conversation a template renders: typed values the API builds at its edge."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, object] = field(
        default_factory=dict
    )  # a JSON object, key order kept
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # system, user, assistant or tool
    content: str
    images: tuple[bytes, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str | None = None  # on a tool message: the function whose result this is
    thinking: str | None = None
