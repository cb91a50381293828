"""Registry routes: POST /api/pull and /api/push (Ollama's).

Bodies: ``{"model", "insecure", "stream", "username", "password"}`` (``name`` is the deprecated
spelling of ``model``). ``username``/``password`` are Ollama's deprecated credential fields; here
they are how a private registry's htpasswd or token-server credentials reach llmd (llmctl fills
them from ``LLMD_REGISTRY_AUTH``). A pull may name a manifest digest: ``model@sha256:<hex>``.

``parse_verify`` reads the body of /api/verify, whose route is in api/models.py, with ``_typed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llmd.api.errors import read_json
from llmd.api.streaming import Event, ndjson_response
from llmd.errors import InvalidModelName, InvalidRequest
from llmd.store import ModelName, Store
from llmd.store.registry import Credentials
from llmd.store.transfer import Target, Transfers


@dataclass(frozen=True, slots=True)
class TransferBody:
    target: Target
    stream: bool = True


@dataclass(frozen=True, slots=True)
class VerifyBody:
    name: ModelName | None
    stream: bool = True


def _typed(body: Mapping[str, Any], key: str, want: type, go_type: str, struct: str) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
        kind = {bool: "bool", str: "string", list: "array", dict: "object"}.get(type(value), "number")
        raise InvalidRequest(f"json: cannot unmarshal {kind} into Go struct field {struct}.{key} of type {go_type}")
    return value


def parse_transfer(body: Mapping[str, Any], struct: str) -> TransferBody:
    # both type-checked, as Go decodes every field before cmp.Or picks one
    model, name = _typed(body, "model", str, "string", struct), _typed(body, "name", str, "string", struct)
    text = model or name or ""
    if not text:
        raise InvalidModelName("invalid model name")
    username = _typed(body, "username", str, "string", struct) or ""
    password = _typed(body, "password", str, "string", struct) or ""
    credentials = Credentials(username, password) if username or password else None
    target = Target.parse(
        text, insecure=bool(_typed(body, "insecure", bool, "bool", struct)), credentials=credentials
    )
    stream = _typed(body, "stream", bool, "bool", struct)
    return TransferBody(target, True if stream is None else stream)


def parse_verify(body: Mapping[str, Any]) -> VerifyBody:
    model = _typed(body, "model", str, "string", "VerifyRequest")
    name = _typed(body, "name", str, "string", "VerifyRequest")
    text = model or name
    stream = _typed(body, "stream", bool, "bool", "VerifyRequest")
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


routes: list[BaseRoute] = [
    Route("/api/pull", pull, methods=["POST"]),
    Route("/api/push", push, methods=["POST"]),
]
