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
from typing import Any, AsyncIterator, Callable, Mapping, Sequence

from starlette.responses import Response, StreamingResponse

from llmd.api.errors import OllamaJSONResponse, error_body, error_response
from llmd.errors import LlmdError

log = logging.getLogger(__name__)

Event = Mapping[str, Any]
Collapse = Callable[[Sequence[Event]], Event]

NDJSON = "application/x-ndjson"


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
