"""GBNF grammars for Ollama's ``format``: ``"json"`` or a JSON schema.

The API calls these at the edge and puts the result in ``SamplingOptions.grammar``; the runner
adds it to the slot's sampler chain so only tokens that keep the output valid can be drawn.
The conversion is llama.cpp's own (llama-cpp-python ships its json-schema-to-grammar port).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import ModuleType

from llmd.errors import InvalidRequest
from llmd.submodule import standalone


def _llama_grammar() -> ModuleType:
    # The converter is pure Python; importing it through llama_cpp would map libllama into the
    # daemon, which never runs inference itself.
    return standalone("llama_cpp", "llama_grammar")


def __getattr__(name: str) -> str:
    # JSON_GBNF: any JSON object, as Ollama constrains `"format": "json"`; read on first use.
    if name == "JSON_GBNF":
        return str(_llama_grammar().JSON_GBNF)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def json_schema_to_gbnf(schema: Mapping[str, object] | bool) -> str:
    """The GBNF for a JSON schema; InvalidRequest when the schema cannot be converted."""
    if not isinstance(schema, (Mapping, bool)):
        raise InvalidRequest("invalid JSON schema in format")
    try:
        text = json.dumps(schema)
        return str(_llama_grammar().json_schema_to_gbnf(text))
    except (
        TypeError,
        ValueError,
        KeyError,
        AttributeError,
        RecursionError,
        AssertionError,
    ) as exc:
        raise InvalidRequest(f"invalid JSON schema in format: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the converter raises bare Exception for bad refs
        raise InvalidRequest(f"invalid JSON schema in format: {exc}") from None
