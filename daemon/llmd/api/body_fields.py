"""Typed reads of one field of a decoded JSON body, for the OpenAI and Anthropic converters.

Each returns None for an absent or null field and raises InvalidRequest naming the field when
its JSON type is wrong, so a converter states what it expects in one call per field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmd.errors import InvalidRequest


def number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"invalid value for '{key}': expected a number")
    return value


def integer(body: Mapping[str, Any], key: str) -> int | None:
    value = number(body, key)
    if value is not None and not float(value).is_integer():
        raise InvalidRequest(f"invalid value for '{key}': expected an integer")
    return None if value is None else int(value)


def boolean(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"invalid value for '{key}': expected a boolean")
    return value


def string(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"invalid value for '{key}': expected a string")
    return value


def obj(body: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise InvalidRequest(f"invalid value for '{key}': expected an object")
    return value


def objects(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """An array of objects (``tools``, ``messages``...); empty when absent or null."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"invalid value for '{key}': expected an array")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{key}[{i}]: expected an object")
    return value


def model(body: Mapping[str, Any]) -> str:
    value = body.get("model")
    if not isinstance(value, str) or not value:
        raise InvalidRequest("model is required")
    return value
