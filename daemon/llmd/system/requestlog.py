"""One log record per HTTP request (``MESSAGE_ID`` REQUEST), with the fields journald indexes.

Pure ASGI, so a streamed response is timed to its last byte and its token counts, known only at
the end of the stream, are still there when the record is written. Fields:

    REQUEST_ID   a fresh id, also put in ``request.state.request_id`` for the route's own records
    ENDPOINT     ``POST /api/chat``
    STATUS       the HTTP status sent (499 when the client went away before any)
    CLIENT       the peer address, ``::ffff:`` removed
    DURATION_MS  to the last byte
    MODEL, PROMPT_TOKENS, EVAL_TOKENS   when the route set them (see ``annotate``)
    KEY_NAME     the name of the API key that authenticated the request (never the key)
    PROMPT, OUTPUT   only with OLLAMA_DEBUG set, never otherwise

Routes report what only they know through ``request.state``::

    from llmd.system.requestlog import annotate
    annotate(request.state, model="smollm2:135m", prompt_tokens=12, eval_tokens=40)

i.e. the attributes ``log_model``, ``log_prompt_tokens``, ``log_eval_tokens``, ``log_prompt`` and
``log_output`` of ``request.state`` (Starlette keeps them in ``scope["state"]``).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmd.system import messages
from llmd.system.traffic import PROBES

log = logging.getLogger("llmd.request")

REQUEST_ID = "request_id"
MODEL = "log_model"
PROMPT_TOKENS = "log_prompt_tokens"
EVAL_TOKENS = "log_eval_tokens"
PROMPT = "log_prompt"
OUTPUT = "log_output"
KEY_NAME = "log_key_name"  # set by llmd.api.auth

_FIELDS = (
    (MODEL, "MODEL"), (PROMPT_TOKENS, "PROMPT_TOKENS"), (EVAL_TOKENS, "EVAL_TOKENS"),
    (KEY_NAME, "KEY_NAME"),
)
_TEXT_FIELDS = ((PROMPT, "PROMPT"), (OUTPUT, "OUTPUT"))


def annotate(
    state: Any,
    *,
    model: str | None = None,
    prompt_tokens: int | None = None,
    eval_tokens: int | None = None,
    prompt: str | None = None,
    output: str | None = None,
) -> None:
    """Attach what the route knows to its request record; None leaves a value unset."""
    for name, value in ((MODEL, model), (PROMPT_TOKENS, prompt_tokens),
                        (EVAL_TOKENS, eval_tokens), (PROMPT, prompt), (OUTPUT, output)):
        if value is not None:
            setattr(state, name, value)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return ""
    host = str(client[0])
    # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
    return host.removeprefix("::ffff:")


def _debug(scope: Scope, default: int) -> int:
    # The app's Config holder is read per request, so a reload that turns debugging on or off
    # applies to the next request.
    app = scope.get("app")
    config = getattr(getattr(app, "state", None), "config", None)
    return int(getattr(config, "debug", default))


class SentStatus:
    """The status a response went out with, watched on its way to ``send``.

    499 (nginx's "client closed request", as Ollama logs a vanished client) until a response
    starts; a crash before that is 500, as uvicorn answers it. The metrics count the same.
    """

    def __init__(self, send: Send) -> None:
        self.code = 499
        self._send = send

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.code = int(message["status"])
        await self._send(message)

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive) -> None:
        """Run ``app`` with its sends watched."""
        try:
            await app(scope, receive, self.send)
        except Exception:  # cancellation is a BaseException: it keeps 499
            if self.code == 499:
                self.code = 500
            raise


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, debug: int = 0) -> None:
        self.app = app
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        request_id = uuid.uuid4().hex[:16]
        state: dict[str, Any] = scope.setdefault("state", {})
        state[REQUEST_ID] = request_id
        status = SentStatus(send)
        try:
            await status.serve(self.app, scope, receive)
        finally:
            fields: dict[str, Any] = {
                "MESSAGE_ID": messages.REQUEST,
                "REQUEST_ID": request_id,
                "ENDPOINT": f"{scope.get('method', '')} {scope.get('path', '')}",
                "STATUS": status.code,
                "CLIENT": _client(scope),
                "DURATION_MS": round((time.monotonic() - started) * 1000, 3),
            }
            for attr, field in _FIELDS:
                if state.get(attr) is not None:
                    fields[field] = state[attr]
            if _debug(scope, self.debug):
                for attr, field in _TEXT_FIELDS:
                    if state.get(attr) is not None:
                        fields[field] = state[attr]
            # a load balancer's or Prometheus' every few seconds would drown the journal
            level = logging.DEBUG if scope.get("path") in PROBES else logging.INFO
            log.log(level, "request", extra=fields)
