"""Forcing a tool call: Anthropic's ``tool_choice`` ``any``/``tool``, Responses' ``required``.

The model's own output decides whether it calls a tool; to make it call one, its sampling is
constrained with a JSON schema (compiled to a grammar like any ``format``) that admits only
``{"name": <an offered tool>, "arguments": <that tool's parameters>}``. That is the bare call
shape llmd.templates' parser recognises whatever tags a template puts around calls, so the
forced output comes back as a tool call like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmd.inference.values import Tool


def forced_call_schema(tools: Sequence[Tool]) -> Mapping[str, Any]:
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.name},
                "arguments": tool.function.get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    return calls[0] if len(calls) == 1 else {"anyOf": calls}
