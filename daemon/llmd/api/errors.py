"""The only module that knows HTTP status codes: LlmdError classes become Ollama, OpenAI or
Anthropic bodies.

Native routes answer ``{"error": "<msg>"}``; routes under ``/v1/`` answer OpenAI's
``{"error": {"message", "type", "param", "code"}}``, except the Anthropic routes under
``/v1/messages``, which answer ``{"type": "error", "error": {"type", "message"}}``. One exception
handler table serves all three, so a route raises an LlmdError and never builds an error response.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from llmd.api import gojson
from llmd.errors import (
    AccessDenied,
    InsufficientMemory,
    InsufficientStorage,
    InvalidRequest,
    KeyBusy,
    LlmdError,
    ModelCoolingDown,
    LoadTimeout,
    NotFound,
    QueueFull,
    RegistryAuthError,
    Unauthorized,
    RequestTooLarge,
)

log = logging.getLogger(__name__)

# Looked up along the MRO, so a subclass added to errors.py inherits its parent's status.
STATUS: dict[type[LlmdError], int] = {
    InvalidRequest: 400,
    RegistryAuthError: 401,
    Unauthorized: 401,
    AccessDenied: 403,
    NotFound: 404,
    KeyBusy: 429,
    RequestTooLarge: 413,
    InsufficientMemory: 500,
    QueueFull: 503,
    ModelCoolingDown: 503,
    LoadTimeout: 503,
    InsufficientStorage: 507,
    LlmdError: 500,
}

# openai/openai.go NewError: only 400 and 404 have their own type.
_OPENAI_TYPE = {400: "invalid_request_error", 404: "not_found_error", 413: "invalid_request_error"}
# Anthropic's error types by status (anthropic/anthropic.go NewError; 529 is Anthropic's overload)
_ANTHROPIC_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                   503: "overloaded_error", 529: "overloaded_error"}


class OllamaJSONResponse(JSONResponse):
    """Gin's JSON content type; Starlette adds the charset only to text/* types."""

    media_type = "application/json; charset=utf-8"


def status_for(exc: LlmdError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def headers_for(exc: LlmdError) -> dict[str, str]:
    """Headers an error's status calls for (RFC 9110: a 401 names the scheme it wants)."""
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if exc.retry_after is not None:  # a busy key, a model cooling down after crashes
        return {"Retry-After": str(exc.retry_after)}
    return {}


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
    return OllamaJSONResponse(
        error_body(exc), status_code=status_for(exc), headers=headers_for(exc)
    )


def openai_error_response(exc: LlmdError) -> Response:
    """The OpenAI-shaped error response, for ``/v1/*`` routes."""
    status = status_for(exc)
    return OllamaJSONResponse(
        openai_error_body(status, exc.message), status_code=status, headers=headers_for(exc)
    )


def anthropic_error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error object, also sent as the data of a stream's ``error`` event."""
    kind = _ANTHROPIC_TYPE.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _is_anthropic(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def _is_openai(path: str) -> bool:
    return path.startswith("/v1/")


def _error_for(
    path: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The error body in the shape of the API that a request to ``path`` called."""
    if _is_anthropic(path):
        body: dict[str, Any] = anthropic_error_body(status, message)
    elif _is_openai(path):
        body = openai_error_body(status, message)
    else:
        body = {"error": message}
    return OllamaJSONResponse(body, status_code=status, headers=dict(headers or {}))


def response_for(path: str, exc: LlmdError) -> Response:
    """The error response for a request to ``path``, for middleware that runs before the routes
    (and so outside the exception handler table)."""
    return _error_for(path, status_for(exc), exc.message, headers_for(exc))


async def _handle_llmd_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LlmdError)
    if status_for(exc) >= 500:
        log.error("request failed", extra={"path": request.url.path, "error": exc.message})
    return response_for(request.url.path, exc)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    # Gin's plain-text router answers, which clients and Ollama's own tests expect verbatim.
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", status_code=404, headers=headers)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", status_code=405, headers=headers)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return _error_for(request.url.path, exc.status_code, message, headers)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware calls this for anything not mapped above; the traceback
    # goes to the log once, the client gets the same JSON shape as every other error.
    log.exception("unhandled error", extra={"path": request.url.path})
    return _error_for(request.url.path, 500, "internal server error")


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
        raise InvalidRequest(
            f"json: cannot unmarshal {gojson.kind(data)} into Go value of type object"
        )
    return {str(key).lower(): value for key, value in data.items()}
