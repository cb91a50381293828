"""Typed reads of one field of an Ollama body, refused in Go encoding/json's words.

Ollama decodes a body into a Go struct, so its clients see a wrong type as
``json: cannot unmarshal <kind> into Go struct field <Struct>.<field> of type <gotype>``; the
model-management, registry and inference schemas all answer it from here. (``body_fields`` is
the OpenAI-style counterpart for the OpenAI and Anthropic converters.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmd.errors import InvalidRequest

# by exact type: json.loads makes nothing else, and a bool is not a number to JSON
_KIND = {bool: "bool", str: "string", list: "array", dict: "object", type(None): "null"}
# the Go type named for a wanted Python type when the caller does not name its own
_GO_TYPE = {str: "string", bool: "bool", int: "int", float: "float64",
            dict: "map[string]interface {}", list: "[]interface {}"}


def kind(value: object) -> str:
    """The JSON kind Go's errors name for a decoded value."""
    return _KIND.get(type(value), "number")


def type_error(value: object, where: str, go_type: str) -> InvalidRequest:
    """``where`` is the dotted Go field, e.g. ``ChatRequest.messages.images``."""
    return InvalidRequest(
        f"json: cannot unmarshal {kind(value)} into Go struct field {where} of type {go_type}"
    )


def field(
    body: Mapping[str, Any],
    key: str,
    want: type | tuple[type, ...],
    struct: str,
    go_type: str | None = None,
) -> Any:
    """``body[key]`` when present and of JSON type ``want``; None when absent or null.

    ``struct`` is the dotted Go path above ``key``. An int field also takes an integral float
    (returned as an int), a float field an int; a bool is never a number. The Go type named in
    the error defaults by ``want`` (its first type when a tuple)."""
    value = body.get(key)
    if value is None:
        return None
    wanted = want if isinstance(want, tuple) else (want,)
    if want is int and isinstance(value, float) and value.is_integer():
        return int(value)
    accepted = (int, float) if want is float else wanted
    if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in wanted):
        raise type_error(value, f"{struct}.{key}", go_type or _GO_TYPE[wanted[0]])
    return value
