"""NDJSON streaming as Ollama does it (server/routes.go ``streamResponse``, ``waitForStream``).

- An error before the first object is an ordinary error response with its HTTP status.
- After the first byte the status is already 200, so an error becomes a last line ``{"error": ...}``.
- ``stream: false`` collects the objects and answers one: by default the last (create, pull, push).
- A client that goes away cancels the stream: Starlette cancels the task iterating the generator,
  which closes it, so whatever it holds (a runner slot) is released by its own ``finally``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, Sequence

from starlette.responses import Response, StreamingResponse

from llmd.api.errors import OllamaJSONResponse, error_body, error_response, status_for
from llmd.errors import LlmdError
from llmd.inference.values import Chunk, Final, Output
from llmd.api.openai_convert import sse_frame

log = logging.getLogger(__name__)

Event = Mapping[str, Any]
Collapse = Callable[[Sequence[Event]], Event]

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"


def encode_line(obj: Event) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def last_event(events: Sequence[Event]) -> Event:
    return events[-1]


async def status_events(statuses: AsyncIterator[Any]) -> AsyncIterator[Event]:
    """A store's create as Ollama's ``{"status": ...}`` objects: strings, or Progress lines."""
    async for status in statuses:
        yield {"status": status} if isinstance(status, str) else status.to_json()


async def _rest(first: Event, events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    try:
        yield encode_line(first)
        async for event in events:
            yield encode_line(event)
    except LlmdError as exc:
        yield encode_line(error_body(exc))
    except Exception:
        log.exception("stream failed")
        yield encode_line({"error": "internal server error"})
    finally:
        # Closed explicitly: a disconnect can cancel us while suspended at our own yield,
        # where the inner generator would otherwise only be finalised by the GC.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def ndjson_response(
    events: AsyncIterator[Event],
    *,
    stream: bool = True,
    collapse: Collapse = last_event,
) -> Response:
    """The response for a streamed endpoint.

    ``events`` yields JSON objects and raises LlmdError on failure. With ``stream`` false the
    objects are reduced by ``collapse`` (default: keep the last one) into one JSON answer.
    """
    if not stream:
        collected: list[Event] = []
        try:
            async for event in events:
                collected.append(event)
        except LlmdError as exc:
            return error_response(exc)
        if not collected:
            return OllamaJSONResponse({})
        return OllamaJSONResponse(dict(collapse(collected)))

    try:
        first = await anext(events)
    except StopAsyncIteration:
        return Response(b"", media_type=NDJSON)
    except LlmdError as exc:
        return error_response(exc)
    return StreamingResponse(_rest(first, events), media_type=NDJSON)


# --- server-sent events (OpenAI, Responses, Anthropic) -------------------------------------------


def sse_event(name: str, obj: Event) -> bytes:
    """A named SSE frame, as the Responses and Anthropic streams send them."""
    return f"event: {name}\n".encode() + sse_frame(obj)


async def collect(items: AsyncIterator[Output]) -> tuple[list[Chunk], Final]:
    """A whole generation, for ``stream: false``: its chunks and its Final."""
    chunks: list[Chunk] = []
    try:
        async for item in items:
            if isinstance(item, Final):
                return chunks, item
            chunks.append(item)
    finally:
        await items.aclose()  # type: ignore[attr-defined]  # frees the lease now, not at GC
    raise LlmdError("the generation ended without a result")


async def sse_response(
    items: AsyncIterator[Output],
    render: Callable[[Output], Iterable[bytes]],
    error: Callable[[int, str], bytes],
    done: bytes = b"",
) -> StreamingResponse:
    """Stream a generation as SSE: each item through ``render``, then ``done``.

    The first item is awaited here, so an error before it (unknown model, bad option) is still an
    ordinary error response with its status; after that an error becomes the frame ``error``
    renders from a status and a message, since the 200 has been sent.
    """
    first = await anext(items)

    async def frames() -> AsyncIterator[bytes]:
        try:
            for frame in render(first):
                yield frame
            async for item in items:
                for frame in render(item):
                    yield frame
            if done:
                yield done
        except LlmdError as exc:
            yield error(status_for(exc), exc.message)
        except Exception:
            log.exception("stream failed")
            yield error(500, "internal server error")
        finally:
            await items.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(frames(), media_type=SSE)
