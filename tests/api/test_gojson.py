"""gojson.field: one field of an Ollama body, its wrong JSON type refused in Go's words."""

from __future__ import annotations

from typing import Any

import pytest
from llmd.api.gojson import field, type_error
from llmd.errors import InvalidRequest


def _error(body: dict[str, Any], want: Any, go_type: str | None = None) -> str:
    with pytest.raises(InvalidRequest) as caught:
        field(body, "f", want, "Req", go_type)
    return str(caught.value)


def test_a_field_of_the_wanted_type_is_returned_and_absent_or_null_is_none() -> None:
    assert field({"f": "x"}, "f", str, "Req") == "x"
    assert field({"f": False}, "f", bool, "Req") is False
    assert field({"f": [1]}, "f", list, "Req") == [1]
    assert field({"f": {"a": 1}}, "f", dict, "Req") == {"a": 1}
    assert field({"f": ["a"]}, "f", (str, list), "Req") == ["a"]
    assert field({}, "f", str, "Req") is None
    assert field({"f": None}, "f", int, "Req") is None


def test_numbers_cross_between_int_and_float_fields_but_bools_never_do() -> None:
    assert (value := field({"f": 2.0}, "f", int, "Req")) == 2 and type(value) is int
    assert field({"f": 3}, "f", float, "Req") == 3
    assert _error({"f": 2.5}, int) == "json: cannot unmarshal number into Go struct field Req.f of type int"
    assert _error({"f": True}, int) == "json: cannot unmarshal bool into Go struct field Req.f of type int"
    assert _error({"f": True}, float) == "json: cannot unmarshal bool into Go struct field Req.f of type float64"


@pytest.mark.parametrize(
    ("value", "want", "message"),
    [
        (1, str, "cannot unmarshal number into Go struct field Req.f of type string"),
        ("x", bool, "cannot unmarshal string into Go struct field Req.f of type bool"),
        ([], dict, "cannot unmarshal array into Go struct field Req.f of type map[string]interface {}"),
        ({}, list, "cannot unmarshal object into Go struct field Req.f of type []interface {}"),
        (1.5, (str, list), "cannot unmarshal number into Go struct field Req.f of type string"),
    ],
)
def test_a_wrong_type_names_the_json_kind_the_field_and_its_go_type(
    value: object, want: Any, message: str
) -> None:
    assert _error({"f": value}, want) == "json: " + message


def test_a_caller_may_name_its_own_go_type() -> None:
    assert _error({"f": "x"}, list, "[]") == "json: cannot unmarshal string into Go struct field Req.f of type []"
    assert str(type_error(None, "Req.items", "api.Message")) == (
        "json: cannot unmarshal null into Go struct field Req.items of type api.Message"
    )
