"""format → GBNF: the helpers the API calls at the edge."""

from __future__ import annotations

import pytest
from llmd.errors import InvalidRequest
from llmd.runner.grammar import JSON_GBNF, json_schema_to_gbnf


def test_the_json_grammar_has_a_root_rule() -> None:
    assert "root" in JSON_GBNF


def test_a_json_schema_becomes_a_grammar_naming_its_properties() -> None:
    gbnf = json_schema_to_gbnf(
        {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        }
    )
    assert gbnf.startswith("") and "root ::=" in gbnf
    assert '\\"name\\"' in gbnf


@pytest.mark.parametrize(
    "schema", [{"type": "nosuch"}, {"$ref": "#/missing"}, 5, "text"]
)
def test_a_bad_schema_is_an_invalid_request(schema: object) -> None:
    with pytest.raises(InvalidRequest, match="invalid JSON schema"):
        json_schema_to_gbnf(schema)  # type: ignore[arg-type]
