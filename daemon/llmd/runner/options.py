"""Ollama's option table: the keys a request's ``options`` or a Modelfile PARAMETER may set.

Three entry points, one table:
- ``coerce_option`` checks one JSON value (a request's ``options``), with Ollama's FromMap rules.
- ``check_parameters`` types the ``parameters`` of a create (Modelfile text or JSON values).
- ``build_options`` layers defaults < the model's params < the request into the runner's values.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import NamedTuple

from llmd.errors import InvalidOption
from llmd.runner.request import LoadOptions, SamplingOptions

log = logging.getLogger(__name__)

# key -> Go kind, as api/types.go's Options and Runner declare them
OPTION_TYPES: dict[str, str] = {
    # Options (per request, sampling)
    "num_keep": "int",
    "seed": "int",
    "num_predict": "int",
    "top_k": "int",
    "top_p": "float",
    "min_p": "float",
    "typical_p": "float",
    "repeat_last_n": "int",
    "temperature": "float",
    "repeat_penalty": "float",
    "presence_penalty": "float",
    "frequency_penalty": "float",
    "stop": "list",
    # Runner (a change means a reload)
    "num_ctx": "int",
    "num_batch": "int",
    "num_gpu": "int",
    "main_gpu": "int",
    "use_mmap": "bool",
    "num_thread": "int",
    "draft_num_predict": "int",
}

# Still accepted in a Modelfile but dropped with a warning (parser/parser.go deprecatedParameters).
DEPRECATED = frozenset({
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only",
    "use_mlock", "mirostat", "mirostat_tau", "mirostat_eta",
})

LOAD_KEYS = frozenset(f.name for f in dataclasses.fields(LoadOptions)) & OPTION_TYPES.keys()
SAMPLING_KEYS = frozenset(f.name for f in dataclasses.fields(SamplingOptions)) & OPTION_TYPES.keys()

# the wording of Go's FromMap errors
_TYPE_WORD = {"int": "integer", "float": "float32", "bool": "boolean", "list": "array"}


def coerce_option(key: str, value: object) -> object:
    """One request option, typed as Ollama's FromMap types it.

    Ints accept JSON floats (truncated, as Go does), floats accept ints. A wrong type raises
    InvalidOption(``option "<k>" must be of type <t>``). ``key`` must be in OPTION_TYPES.
    """
    kind = OPTION_TYPES[key]
    wrong = InvalidOption(f'option "{key}" must be of type {_TYPE_WORD[kind]}')
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == "list":
        if isinstance(value, str):
            return [value]  # a single stop string is a common client shortcut
        if not isinstance(value, (list, tuple)):
            raise wrong
        if not all(isinstance(item, str) for item in value):
            raise InvalidOption(f'option "{key}" must be of an array of strings')
        return list(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong
    if kind == "int":
        if isinstance(value, float) and not math.isfinite(value):
            raise wrong
        return int(value)
    return float(value)


def _parse_text(key: str, kind: str, values: list[str]) -> object:
    """A Modelfile value, parsed as Go's FormatParams does (its error wording included)."""
    text = values[0]
    shown = "[" + " ".join(values) + "]"  # Go prints the []string
    if kind == "list":
        return list(values)
    if kind == "bool":
        lowered = text.strip()
        if lowered in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if lowered in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise InvalidOption(f"invalid bool value {shown}")
    try:
        if kind == "int":
            return int(text.strip(), 10)
        number = float(text.strip())
    except ValueError:
        raise InvalidOption(f"invalid {kind} value {shown}") from None
    return number


def check_parameter(key: str, values: list[str] | object) -> object | None:
    """One parameter typed; None for a deprecated one (warned and dropped)."""
    if key in DEPRECATED:
        log.warning("deprecated parameter ignored", extra={"parameter": key})
        return None
    kind = OPTION_TYPES.get(key)
    if kind is None:
        raise InvalidOption(f"unknown parameter '{key}'")
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values) and kind != "list":
        return _parse_text(key, kind, values)
    if isinstance(values, str) and kind != "list":
        return _parse_text(key, kind, [values])
    return coerce_option(key, values)


def check_parameters(params: Mapping[str, object]) -> dict[str, object]:
    """The ``parameters`` of a create, typed per the option table.

    Values may be Modelfile text (``"0.2"``) or JSON values (``0.2``); ``stop`` is always a
    list of strings. Unknown keys raise InvalidOption(``unknown parameter '<k>'``); deprecated
    ones are dropped with a warning.
    """
    out: dict[str, object] = {}
    for key, value in params.items():
        if value is None:
            continue
        typed = check_parameter(key, value)
        if typed is not None:
            out[key] = typed
    return out


class BuiltOptions(NamedTuple):
    load: LoadOptions
    sampling: SamplingOptions


def build_options(
    model_params: Mapping[str, object],
    request_options: Mapping[str, object] | None,
    *,
    default_num_ctx: int,
    num_parallel: int,
) -> BuiltOptions:
    """The runner's options: defaults < the model's params layer < the request's ``options``.

    ``model_params`` were typed when the model was created; request options are checked here.
    Unknown request keys are logged and ignored, as Ollama does (clients send ``numa`` etc).
    """
    merged: dict[str, object] = {}
    for key, value in model_params.items():
        if key not in OPTION_TYPES or value is None:
            continue
        try:
            merged[key] = coerce_option(key, value)
        except InvalidOption:
            # a params layer written by another tool or an older Ollama: skip it rather than
            # fail every request to the model over it
            log.warning("ignoring a mistyped model parameter", extra={"option": key})
    for key, value in (request_options or {}).items():
        if value is None:
            continue
        if key not in OPTION_TYPES:
            log.warning("invalid option provided", extra={"option": key})
            continue
        merged[key] = coerce_option(key, value)

    load_values = {k: v for k, v in merged.items() if k in LOAD_KEYS}
    load_values.setdefault("num_ctx", default_num_ctx)
    load = LoadOptions(**load_values, num_parallel=num_parallel)  # type: ignore[arg-type]
    sampling_values = {k: v for k, v in merged.items() if k in SAMPLING_KEYS}
    if "stop" in sampling_values:
        sampling_values["stop"] = tuple(sampling_values["stop"])  # type: ignore[arg-type]
    sampling = SamplingOptions(**sampling_values)  # type: ignore[arg-type]
    return BuiltOptions(load, sampling)
