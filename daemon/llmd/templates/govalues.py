"""The Go values a template sees, and how Go prints and marshals them.

Ollama executes templates over Go structs (``api.Message``, ``api.Tool``...) and maps. Here a
struct is a ``GoStruct`` (a missing field is an execution error, as in Go), a map is a ``dict``
(a missing key is the zero value, printed ``<no value>``), and tool-call arguments are a
``JsonMap``: Ollama's ``ToolCallFunctionArguments`` has a ``String()`` that prints JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence


class GoStruct:
    """A Go struct value: named fields in declaration order, plus its JSON form for ``json``."""

    __slots__ = ("fields", "json_value", "prints_json", "type_name")

    def __init__(
        self,
        type_name: str,
        fields: dict[str, object],
        json_value: object,
        prints_json: bool = False,
    ) -> None:
        self.type_name = type_name
        self.fields = fields
        self.json_value = json_value
        self.prints_json = (
            prints_json  # the Go type's String() marshals it (api.Tool...)
        )

    def __repr__(self) -> str:
        return f"GoStruct({self.type_name}, {self.fields!r})"


class JsonMap(dict[str, object]):
    """A map whose Go type has a ``String()`` method that prints it as JSON."""


class JsonList(list[object]):
    """A slice whose Go type has a ``String()`` method that prints it as JSON (``.Tools``)."""


class GoStringer:
    """A value whose Go type prints through ``String()`` but marshals as ``json_value``."""

    __slots__ = ("json_value", "text")

    def __init__(self, text: str, json_value: object) -> None:
        self.text = text
        self.json_value = json_value


def type_name(value: object) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, GoStringer):
        return "api.PropertyType"
    return "[]interface {}"


def is_true(value: object) -> bool:
    """Go's template truth: the zero value and empty collections are false."""
    if value is None:
        return False
    if isinstance(value, (GoStruct, GoStringer)):
        return True
    if isinstance(value, (bool, int, float, str, Mapping, Sequence)):
        return bool(value)
    return True


def format_float(value: float) -> str:
    """Go's ``%v`` of a float64 (strconv 'g' with the shortest digits)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    digits, exp = _shortest(value)
    sign = "-" if value < 0 else ""
    if (
        exp < -4 or exp >= 6
    ):  # strconv uses precision 6 for this choice with shortest digits
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sign + _plain(digits, exp)


def _shortest(value: float) -> tuple[str, int]:
    """The shortest round-tripping digits of |value| and its decimal exponent (d.ddd × 10^exp)."""
    text = repr(abs(value))
    if "e" in text:
        mant, _, exp = text.partition("e")
        return mant.replace(".", "").rstrip("0") or "0", int(exp)
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if whole != "0":
        return (whole + frac).rstrip("0"), len(whole) - 1
    stripped = frac.lstrip("0")
    return stripped, -(len(frac) - len(stripped)) - 1


def _plain(digits: str, exp: int) -> str:
    if exp < 0:
        return "0." + "0" * (-exp - 1) + digits
    if len(digits) <= exp + 1:
        return digits + "0" * (exp + 1 - len(digits))
    return digits[: exp + 1] + "." + digits[exp + 1 :]


def go_print(value: object) -> str:
    """What ``{{ value }}`` writes: fmt.Print's rendering of the value."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, GoStringer):
        return value.text
    if (
        isinstance(value, (JsonMap, JsonList))
        or isinstance(value, GoStruct)
        and value.prints_json
    ):
        return go_json(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_inner(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, GoStruct):
        return "{" + " ".join(_inner(v) for v in value.fields.values()) + "}"
    if isinstance(value, Sequence):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    return str(value)


def _inner(value: object) -> str:
    return "<nil>" if value is None else go_print(value)


def to_json_value(value: object) -> object:
    """Plain JSON data for a template value (structs marshal as their Go JSON form)."""
    if isinstance(value, (GoStruct, GoStringer)):
        return to_json_value(value.json_value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)  # Go marshals 1.0 as 1
    return value


def go_json(value: object) -> str:
    """``json.Marshal`` as Go does it: compact, UTF-8, with <, > and & escaped for HTML."""
    text = json.dumps(to_json_value(value), ensure_ascii=False, separators=(",", ":"))
    # These characters only occur inside JSON strings, so replacing them is safe.
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text
