"""The request body limit: no body over ``max_request_bytes`` is read, let alone forwarded.

A pure ASGI middleware that wraps ``receive``: a declared ``Content-Length`` over the limit is
refused on the route's first read, before a byte of the body is taken in (and before uvicorn
sends ``100 Continue``); a chunked body is counted as it arrives and refused once it passes the
limit. The refusal is a RequestTooLarge raised inside the route, so it is answered by the one
error table in api/errors.py (413, ``{"error": "request body too large (N bytes, limit M)"}``).

Blob uploads (``/api/blobs/``) are exempt: they stream to disk a chunk at a time and are bounded
by free disk space instead (``min_free_disk``, see ``Store.write_blob``).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmd.errors import RequestTooLarge

EXEMPT_PREFIXES = ("/api/blobs/",)


def declared_length(scope: Scope) -> int | None:
    text = Headers(scope=scope).get("content-length")
    if text is None or not text.strip().isdigit():
        return None
    return int(text)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = declared_length(scope)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if declared is not None and declared > limit:
                _count_rejection(scope)
                raise RequestTooLarge(declared, limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    _count_rejection(scope)
                    raise RequestTooLarge(seen, limit, at_least=message.get("more_body", False))
            return message

        await self.app(scope, limited, send)


def _count_rejection(scope: Scope) -> None:
    metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
    if metrics is not None:
        metrics.rejected("too_large")
