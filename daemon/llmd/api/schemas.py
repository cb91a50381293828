"""JSON bodies of the model-management endpoints, validated into frozen values at the edge.

Each ``parse_*`` takes the dict from ``errors.read_json`` (top-level keys lower-cased) and
raises InvalidRequest with Ollama's wording; below this module nothing re-checks types.
Type errors read like Go's encoding/json ones, since that is what Ollama clients have seen.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any, Mapping

from llmd.errors import InvalidModelName, InvalidRequest
from llmd.store import (
    CreateRequest,
    Message,
    ModelName,
    check_parameters,
    parse_digest,
    parse_quantize_type,
)

_JSON_KIND = {bool: "bool", str: "string", list: "array", dict: "object", type(None): "null"}


def _kind(value: object) -> str:
    return _JSON_KIND.get(type(value), "number")


def _field(body: Mapping[str, Any], key: str, want: type | tuple[type, ...], struct: str) -> Any:
    """``body[key]`` if present and of the wanted JSON type; None when absent or null."""
    value = body.get(key)
    if value is None:
        return None
    wanted = want if isinstance(want, tuple) else (want,)
    # bool is an int in Python but never a number in JSON
    if isinstance(value, bool) and bool not in wanted:
        ok = False
    else:
        ok = isinstance(value, wanted)
    if not ok:
        go_type = {str: "string", bool: "bool", dict: "map[string]interface {}", list: "[]"}.get(
            wanted[0], wanted[0].__name__
        )
        raise InvalidRequest(
            f"json: cannot unmarshal {_kind(value)} into Go struct field {struct}.{key} of type {go_type}"
        )
    return value


def _name(body: Mapping[str, Any], struct: str) -> str:
    """``model``, or the deprecated ``name`` when model is empty (Go's cmp.Or)."""
    return _field(body, "model", str, struct) or _field(body, "name", str, struct) or ""


def _stream(body: Mapping[str, Any], struct: str) -> bool:
    value = _field(body, "stream", bool, struct)
    return True if value is None else value  # absent or null means stream


@dataclass(frozen=True, slots=True)
class ShowRequest:
    name: ModelName
    verbose: bool = False


def parse_show(body: Mapping[str, Any]) -> ShowRequest:
    text = _name(body, "ShowRequest")
    if not text:
        raise InvalidRequest("model is required")
    verbose = bool(_field(body, "verbose", bool, "ShowRequest"))
    return ShowRequest(ModelName.parse(text), verbose)


@dataclass(frozen=True, slots=True)
class CopyRequest:
    source: ModelName
    destination: ModelName


def _named(text: str, what: str) -> ModelName:
    try:
        return ModelName.parse(text)
    except InvalidModelName:
        raise InvalidModelName(f"{what} {_go_quote(text)} is invalid") from None


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_copy(body: Mapping[str, Any]) -> CopyRequest:
    source = _field(body, "source", str, "CopyRequest") or ""
    destination = _field(body, "destination", str, "CopyRequest") or ""
    return CopyRequest(_named(source, "source"), _named(destination, "destination"))


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    name: ModelName
    text: str  # as the client spelled it, for Ollama's not-found message


def parse_delete(body: Mapping[str, Any]) -> DeleteRequest:
    text = _name(body, "DeleteRequest")
    return DeleteRequest(_named(text, "name"), text)


@dataclass(frozen=True, slots=True)
class CreateBody:
    request: CreateRequest
    stream: bool = True


def _file_map(body: Mapping[str, Any], key: str) -> dict[str, str]:
    files = _field(body, key, dict, "CreateRequest") or {}
    out: dict[str, str] = {}
    for path, digest in files.items():
        if not isinstance(digest, str):
            raise InvalidRequest(
                f"json: cannot unmarshal {_kind(digest)} into Go struct field "
                f"CreateRequest.{key} of type string"
            )
        norm = posixpath.normpath(path) if path else ""
        if not path or posixpath.isabs(path) or norm == ".." or norm.startswith("../"):
            raise InvalidRequest("file path must be relative")
        out[path] = parse_digest(digest)
    return out


def _license(body: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = _field(body, "license", (str, list), "CreateRequest")
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not all(isinstance(item, str) for item in value):
        raise InvalidRequest("license must be a string or a list of strings")
    return tuple(value)


def _messages(body: Mapping[str, Any]) -> tuple[Message, ...] | None:
    value = _field(body, "messages", list, "CreateRequest")
    if value is None:
        return None
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidRequest(
                f"json: cannot unmarshal {_kind(item)} into Go struct field "
                "CreateRequest.messages of type api.Message"
            )
        fields = {str(k).lower(): v for k, v in item.items()}
        role, content = fields.get("role", ""), fields.get("content", "")
        if not isinstance(role, str) or not isinstance(content, str):
            raise InvalidRequest("message role and content must be strings")
        out.append(Message(role, content))
    return tuple(out)


def parse_create(body: Mapping[str, Any]) -> CreateBody:
    struct = "CreateRequest"
    name = ModelName.parse(_name(body, struct))
    from_text = _field(body, "from", str, struct)
    files = _file_map(body, "files")
    if not from_text and not files:
        raise InvalidRequest("neither 'from' or 'files' was specified")
    quantize = _field(body, "quantize", str, struct) or _field(body, "quantization", str, struct)
    parameters = _field(body, "parameters", dict, struct)
    request = CreateRequest(
        name=name,
        from_=ModelName.parse(from_text) if from_text else None,
        files=files,
        adapters=_file_map(body, "adapters"),
        template=_field(body, "template", str, struct),
        system=_field(body, "system", str, struct),
        license=_license(body),
        parameters=check_parameters(parameters) if parameters is not None else None,
        messages=_messages(body),
        quantize=parse_quantize_type(quantize) if quantize else None,
    )
    return CreateBody(request, _stream(body, struct))
