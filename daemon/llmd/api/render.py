"""Small value formatters shared by the API routes: Go's timestamp and ``%#v`` forms, JSON-safe values."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any


def rfc3339(moment: datetime) -> str:
    """RFC3339Nano in UTC as Go prints it: fraction without trailing zeros, ``Z`` suffix."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def go_value(value: object) -> str:
    """Go's ``%#v`` of a JSON-decoded value, as ``ollama show --parameters`` prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # params are float64 once decoded; %v uses %e only from an exponent of 21
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return json.dumps(jsonable(value), ensure_ascii=False)


def format_parameters(parameters: dict[str, object]) -> str:
    """One ``%-30s %#v`` line per value; a list gives one line per item (Ollama's ShowHandler)."""
    lines = []
    for key in sorted(parameters):
        value = parameters[key]
        for item in value if isinstance(value, (list, tuple)) else (value,):
            lines.append(f"{key:<30} {go_value(item)}")
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """Plain JSON types from GGUF metadata (numpy scalars and arrays, bytes, tuples)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def trim_arrays(info: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """model_info without the long arrays (the vocabulary) unless ``verbose``, as Ollama does."""
    if verbose:
        return {k: jsonable(v) for k, v in info.items()}
    out: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and hasattr(value, "dtype"):
            out[key] = [] if len(value) > 5 else jsonable(value)
        else:
            out[key] = jsonable(value)
    return out
