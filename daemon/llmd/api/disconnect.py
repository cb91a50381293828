"""A client that goes away cancels its request, whatever the route and whatever it is doing.

Starlette notices a vanished client only while it streams a response. A request that is queued
for a slot, waiting for its model to load, in prefill, or collecting a non-streamed answer (the
OpenAI SDKs' default) would otherwise hold its slot until generation ends, and SDK timeouts
with retries pile up abandoned generations.

So every HTTP request runs as a child task next to a pump that owns ``receive``: it passes body
messages through one at a time (so an upload keeps its backpressure) and, once the body is in,
keeps listening. When ``http.disconnect`` arrives before the response is complete, the request's
task is cancelled: each ``finally`` below runs, the scheduler lease is released (the slot is free
at once) and the runner handle sends ``cancel``, which the runner applies before its next decode
step. A cancelled request sends nothing; the request log records it as 499.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}


class _Pump:
    """Owns the real ``receive``; the request reads through ``receive`` here instead."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        self.gone = asyncio.Event()

    async def run(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return
            await self._queue.put(message)

    async def receive(self) -> Message:
        if self.gone.is_set() and self._queue.empty():
            return _DISCONNECT
        getter = asyncio.ensure_future(self._queue.get())
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            await asyncio.wait({getter, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not getter.done():
                getter.cancel()
        return getter.result() if getter.done() and not getter.cancelled() else _DISCONNECT


class CancelOnDisconnectMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pump = _Pump(receive)
        complete = False

        async def watched_send(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        request = asyncio.ensure_future(self.app(scope, pump.receive, watched_send))
        listener = asyncio.ensure_future(pump.run())
        gone = asyncio.ensure_future(pump.gone.wait())
        try:
            await asyncio.wait({request, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not request.done() and not complete:
                request.cancel()  # the client left: stop the work, send nothing more
                with contextlib.suppress(asyncio.CancelledError):
                    await request
                return
            await request
        finally:
            # Also on our own cancellation (server shutdown): the request goes with us.
            for task in (request, listener, gone):
                task.cancel()
            await asyncio.gather(request, listener, gone, return_exceptions=True)
