"""The only module that knows HTTP status codes: LlmdError classes become Ollama or OpenAI bodies.

Native routes answer ``{"error": "<msg>"}``; routes under ``/v1/`` answer OpenAI's
``{"error": {"message", "type", "param", "code"}}``. One exception handler table serves both,
so a route raises an LlmdError and never builds an error response itself.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from llmd.errors import (
    AccessDenied,
    InsufficientMemory,
    InsufficientStorage,
    InvalidRequest,
    LlmdError,
    LoadTimeout,
    NotFound,
    QueueFull,
    RegistryAuthError,
    RequestCanceled,
    RequestTooLarge,
)

log = logging.getLogger(__name__)

# Looked up along the MRO, so a subclass added to errors.py inherits its parent's status.
STATUS: dict[type[LlmdError], int] = {
    InvalidRequest: 400,
    RegistryAuthError: 401,
    AccessDenied: 403,
    NotFound: 404,
    RequestTooLarge: 413,
    RequestCanceled: 499,  # nginx's "client closed request", which Ollama uses too
    InsufficientMemory: 500,
    QueueFull: 503,
    LoadTimeout: 503,
    InsufficientStorage: 507,
    LlmdError: 500,
}

# openai/openai.go NewError: only 400 and 404 have their own type.
_OPENAI_TYPE = {400: "invalid_request_error", 404: "not_found_error", 413: "invalid_request_error"}


class OllamaJSONResponse(JSONResponse):
    """Gin's JSON content type; Starlette adds the charset only to text/* types."""

    media_type = "application/json; charset=utf-8"


def status_for(exc: LlmdError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def error_body(exc: LlmdError) -> dict[str, str]:
    """The body of an error on the native API, also used for an in-stream error line."""
    return {"error": exc.message}


def openai_error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _OPENAI_TYPE.get(status, "api_error"),
            "param": None,
            "code": None,
        }
    }


def error_response(exc: LlmdError) -> Response:
    """The native error response: ``{"error": msg}`` with the mapped status."""
    return OllamaJSONResponse(error_body(exc), status_code=status_for(exc))


def openai_error_response(exc: LlmdError) -> Response:
    """The OpenAI-shaped error response, for ``/v1/*`` routes."""
    status = status_for(exc)
    return OllamaJSONResponse(openai_error_body(status, exc.message), status_code=status)


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


async def _handle_llmd_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LlmdError)
    if status_for(exc) >= 500:
        log.error("request failed", extra={"path": request.url.path, "error": exc.message})
    return openai_error_response(exc) if _is_openai(request) else error_response(exc)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    # Gin's plain-text router answers, which clients and Ollama's own tests expect verbatim.
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", status_code=404, headers=headers)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", status_code=405, headers=headers)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if _is_openai(request):
        return OllamaJSONResponse(
            openai_error_body(exc.status_code, message), status_code=exc.status_code, headers=headers
        )
    return OllamaJSONResponse({"error": message}, status_code=exc.status_code, headers=headers)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware calls this for anything not mapped above; the traceback
    # goes to the log once, the client gets the same JSON shape as every other error.
    log.exception("unhandled error", extra={"path": request.url.path})
    message = "internal server error"
    if _is_openai(request):
        return OllamaJSONResponse(openai_error_body(500, message), status_code=500)
    return OllamaJSONResponse({"error": message}, status_code=500)


EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    LlmdError: _handle_llmd_error,
    HTTPException: _handle_http_exception,
    Exception: _handle_unexpected,
}


# --- request bodies ------------------------------------------------------------------------------


def _json_error(exc: json.JSONDecodeError) -> str:
    if exc.msg.startswith("Expecting value") and exc.pos >= len(exc.doc.rstrip()):
        return "unexpected EOF"
    if exc.pos < len(exc.doc):
        return f"invalid character {exc.doc[exc.pos]!r} looking for beginning of value"
    return "unexpected EOF"


def _no_constant(name: str) -> object:
    # Python reads NaN and Infinity; JSON (and Go) has no such literals, and an option or a
    # keep_alive of inf or NaN must not get past the edge.
    raise InvalidRequest(f"invalid character {name[0]!r} looking for beginning of value")


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object whose top-level keys are lower-cased.

    Ollama binds JSON with Go's encoding/json: struct fields match case-insensitively and unknown
    fields are ignored, so lower-casing the top level gives schemas.py one spelling to look up.
    Nested objects are left alone: their keys can be data (``files``, ``parameters``).
    """
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("missing request body")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidRequest("invalid character in request body: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(_json_error(exc)) from None
    except RecursionError:
        raise InvalidRequest("json: exceeded max depth") from None
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "bool", type(None): "null"}.get(
            type(data), "number"
        )
        raise InvalidRequest(f"json: cannot unmarshal {kind} into Go value of type object")
    return {str(key).lower(): value for key, value in data.items()}
