"""Registry routes: POST /api/pull and /api/push (Ollama's), and POST /api/verify (llmd's own).

Bodies: ``{"model", "insecure", "stream", "username", "password"}`` (``name`` is the deprecated
spelling of ``model``). ``username``/``password`` are Ollama's deprecated credential fields; here
they are how a private registry's htpasswd or token-server credentials reach llmd (llmctl fills
them from ``LLMD_REGISTRY_AUTH``). A pull may name a manifest digest: ``model@sha256:<hex>``.

``/api/verify {"model"?}`` hashes the blobs of one model (or of every model) again and streams
``{"status": "verifying <12 hex>", "digest", "total", "corrupt"}`` per blob, then ``success`` or
an error line naming the corrupt blobs.
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
from llmd.errors import CorruptBlobs, InvalidModelName
from llmd.store import ModelName, Store
from llmd.store.registry import Credentials
from llmd.store.transfer import Target, Transfers, short


@dataclass(frozen=True, slots=True)
class TransferBody:
    target: Target
    stream: bool = True


@dataclass(frozen=True, slots=True)
class VerifyBody:
    name: ModelName | None
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


def parse_verify(body: Mapping[str, Any]) -> VerifyBody:
    model = field(body, "model", str, "VerifyRequest")
    name = field(body, "name", str, "VerifyRequest")
    text = model or name
    stream = field(body, "stream", bool, "VerifyRequest")
    return VerifyBody(ModelName.parse(text) if text else None, True if stream is None else stream)


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


async def _verify_lines(checks: AsyncIterator[Any]) -> AsyncIterator[Event]:
    corrupt: list[str] = []
    async for check in checks:
        if not check.ok:
            corrupt.append(check.digest)
        yield {"status": f"verifying {short(check.digest)}", "digest": check.digest,
               "total": check.size, "corrupt": not check.ok}
    if corrupt:
        raise CorruptBlobs(f"{len(corrupt)} corrupt or missing blob(s): {', '.join(corrupt)}")
    yield {"status": "success"}


async def verify(request: Request) -> Response:
    raw = await request.body()
    body = parse_verify(await read_json(request) if raw.strip() else {})
    return await ndjson_response(_verify_lines(transfers(request).verify(body.name)), stream=body.stream)


routes: list[BaseRoute] = [
    Route("/api/pull", pull, methods=["POST"]),
    Route("/api/push", push, methods=["POST"]),
    Route("/api/verify", verify, methods=["POST"]),
]
