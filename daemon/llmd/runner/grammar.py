"""GBNF grammars for Ollama's ``format``: ``"json"`` or a JSON schema.

The API calls these at the edge and puts the result in ``SamplingOptions.grammar``; the runner
adds it to the slot's sampler chain so only tokens that keep the output valid can be drawn.
The conversion is llama.cpp's own (llama-cpp-python ships its json-schema-to-grammar port).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from llama_cpp import llama_grammar

from llmd.errors import InvalidRequest

# Any JSON object, as Ollama constrains `"format": "json"`.
JSON_GBNF: str = llama_grammar.JSON_GBNF


def json_schema_to_gbnf(schema: Mapping[str, object] | bool) -> str:
    """The GBNF for a JSON schema; InvalidRequest when the schema cannot be converted."""
    if not isinstance(schema, (Mapping, bool)):
        raise InvalidRequest("invalid JSON schema in format")
    try:
        text = json.dumps(schema)
        return str(llama_grammar.json_schema_to_gbnf(text))
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
