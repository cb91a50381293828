"""JSON bodies of the model-management endpoints, validated into frozen values at the edge.

Each ``parse_*`` takes the dict from ``errors.read_json`` (top-level keys lower-cased) and
raises InvalidRequest with Ollama's wording; below this module nothing re-checks types.
Type errors read like Go's encoding/json ones (``gojson``), since that is what Ollama clients
have seen.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any, Mapping

from llmd.api.gojson import field, type_error
from llmd.errors import InvalidModelName, InvalidRequest
from llmd.store import (
    CreateRequest,
    Message,
    ModelName,
    check_parameters,
    parse_digest,
    parse_quantize_type,
)

def _name(body: Mapping[str, Any], struct: str) -> str:
    """``model``, or the deprecated ``name`` when model is empty (Go's cmp.Or).

    Both are type-checked, as Go decodes every field before cmp.Or picks one."""
    model, name = field(body, "model", str, struct), field(body, "name", str, struct)
    return model or name or ""


def _stream(body: Mapping[str, Any], struct: str) -> bool:
    value = field(body, "stream", bool, struct)
    return True if value is None else value  # absent or null means stream


@dataclass(frozen=True, slots=True)
class ShowRequest:
    name: ModelName
    verbose: bool = False


def parse_show(body: Mapping[str, Any]) -> ShowRequest:
    text = _name(body, "ShowRequest")
    if not text:
        raise InvalidRequest("model is required")
    verbose = bool(field(body, "verbose", bool, "ShowRequest"))
    return ShowRequest(ModelName.parse(text), verbose)


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    name: ModelName | None  # None: every model
    stream: bool = True


def parse_verify(body: Mapping[str, Any]) -> VerifyRequest:
    text = _name(body, "VerifyRequest")
    return VerifyRequest(ModelName.parse(text) if text else None, _stream(body, "VerifyRequest"))


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
    source = field(body, "source", str, "CopyRequest") or ""
    destination = field(body, "destination", str, "CopyRequest") or ""
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
    files = field(body, key, dict, "CreateRequest") or {}
    out: dict[str, str] = {}
    for path, digest in files.items():
        if not isinstance(digest, str):
            raise type_error(digest, f"CreateRequest.{key}", "string")
        norm = posixpath.normpath(path) if path else ""
        if not path or posixpath.isabs(path) or norm == ".." or norm.startswith("../"):
            raise InvalidRequest("file path must be relative")
        out[path] = parse_digest(digest)
    return out


def _license(body: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = field(body, "license", (str, list), "CreateRequest")
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not all(isinstance(item, str) for item in value):
        raise InvalidRequest("license must be a string or a list of strings")
    return tuple(value)


def _messages(body: Mapping[str, Any]) -> tuple[Message, ...] | None:
    value = field(body, "messages", list, "CreateRequest", "[]")
    if value is None:
        return None
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise type_error(item, "CreateRequest.messages", "api.Message")
        fields = {str(k).lower(): v for k, v in item.items()}
        role, content = fields.get("role", ""), fields.get("content", "")
        if not isinstance(role, str) or not isinstance(content, str):
            raise InvalidRequest("message role and content must be strings")
        out.append(Message(role, content))
    return tuple(out)


def parse_create(body: Mapping[str, Any]) -> CreateBody:
    struct = "CreateRequest"
    name = ModelName.parse(_name(body, struct))
    from_text = field(body, "from", str, struct)
    files = _file_map(body, "files")
    if not from_text and not files:
        raise InvalidRequest("neither 'from' or 'files' was specified")
    quantize = field(body, "quantize", str, struct) or field(body, "quantization", str, struct)
    parameters = field(body, "parameters", dict, struct)
    request = CreateRequest(
        name=name,
        from_=ModelName.parse(from_text) if from_text else None,
        files=files,
        adapters=_file_map(body, "adapters"),
        template=field(body, "template", str, struct),
        system=field(body, "system", str, struct),
        license=_license(body),
        parameters=check_parameters(parameters) if parameters is not None else None,
        messages=_messages(body),
        quantize=parse_quantize_type(quantize) if quantize else None,
    )
    return CreateBody(request, _stream(body, struct))
