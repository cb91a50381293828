"""Registry routes: POST /api/pull and /api/push (Ollama's).

Bodies: ``{"model", "insecure", "stream", "username", "password"}`` (``name`` is the deprecated
spelling of ``model``). ``username``/``password`` are Ollama's deprecated credential fields; here
they are how a private registry's htpasswd or token-server credentials reach llmd (llmctl fills
them from ``LLMD_REGISTRY_AUTH``). A pull may name a manifest digest: ``model@sha256:<hex>``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmd.api.errors import read_json
from llmd.api.gojson import field
from llmd.api.streaming import Event, ndjson_response
from llmd.errors import InvalidModelName
from llmd.store import Store
from llmd.store.registry import Credentials
from llmd.store.transfer import Target, Transfers


@dataclass(frozen=True, slots=True)
class TransferBody:
    target: Target
    stream: bool = True


def parse_transfer(body: Mapping[str, Any], struct: str) -> TransferBody:
    # both type-checked, as Go decodes every field before cmp.Or picks one
    model, name = field(body, "model", str, struct), field(body, "name", str, struct)
    text = model or name or ""
    if not text:
        raise InvalidModelName("invalid model name")
    username = field(body, "username", str, struct) or ""
    password = field(body, "password", str, struct) or ""
    credentials = Credentials(username, password) if username or password else None
    target = Target.parse(
        text, insecure=bool(field(body, "insecure", bool, struct)), credentials=credentials
    )
    stream = field(body, "stream", bool, struct)
    return TransferBody(target, True if stream is None else stream)


def transfers(request: Request) -> Transfers:
    """The app's one Transfers, made on first use: concurrent pulls must see the same one."""
    found = getattr(request.app.state, "transfers", None)
    if found is None:
        store: Store = request.app.state.store
        found = request.app.state.transfers = Transfers(store)
    return found


async def _json_lines(progress: AsyncIterator[Any]) -> AsyncIterator[Event]:
    async for item in progress:
        yield item.to_json()


async def pull(request: Request) -> Response:
    body = parse_transfer(await read_json(request), "PullRequest")
    return await ndjson_response(_json_lines(transfers(request).pull(body.target)), stream=body.stream)


async def push(request: Request) -> Response:
    body = parse_transfer(await read_json(request), "PushRequest")
    return await ndjson_response(_json_lines(transfers(request).push(body.target)), stream=body.stream)


routes: list[BaseRoute] = [
    Route("/api/pull", pull, methods=["POST"]),
    Route("/api/push", push, methods=["POST"]),
]
