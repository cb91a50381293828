"""A client for the OCI distribution (docker registry v2) protocol, as Ollama's server/images.go uses it.

A model ``host/namespace/model:tag`` lives at ``{scheme}://host/v2/namespace/model/``: its
manifest under ``manifests/<tag or digest>``, its layers under ``blobs/<digest>``. Uploads are
the protocol's three steps: POST ``blobs/uploads/`` for a session URL, PATCH the bytes there,
PUT ``?digest=`` to commit.

Authentication answers the registry's challenge on a 401, then retries once:

- ``WWW-Authenticate: Bearer realm=R,service=S,scope=X``: GET ``R?service=S&scope=X`` (with the
  credentials as Basic auth when there are any) for a ``token``, sent as ``Authorization: Bearer``.
- ``WWW-Authenticate: Basic realm=R`` (htpasswd): the credentials as Basic auth.

Credentials come from the request (Ollama's deprecated ``username``/``password`` fields); a 401
that survives them is a RegistryAuthError. httpx errors are translated to RegistryError here,
once, so nothing above this module sees httpx.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Self

from llmd.errors import RegistryAuthError, RegistryError
from llmd.store.names import ModelName
from llmd.submodule import lazy

# Loaded on first use: only pulls and pushes need httpx, and the idle daemon's memory and
# start-up should not pay for it.
httpx = lazy("httpx")

log = logging.getLogger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_ACCEPT = f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"

# Only connecting is bounded tightly; a read may legitimately wait on a slow registry, but a
# connection that sends nothing for a minute is dead and the download resumes elsewhere.
TIMEOUT = {"connect": 30.0, "read": 60.0, "write": 60.0, "pool": None}

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class Repository:
    """Where a model lives on a registry: ``base`` (scheme://host) and ``path`` (namespace/model)."""

    base: str
    path: str

    @classmethod
    def for_name(cls, name: ModelName, *, insecure: bool) -> Repository:
        """Ollama's mapping; ``insecure`` allows (and selects) plain http.

        An explicit ``http://`` name without ``insecure`` is refused as Ollama refuses it.
        """
        if name.scheme == "http" and not insecure:
            raise RegistryError("insecure protocol http")
        scheme = "http" if insecure else name.scheme
        return cls(f"{scheme}://{name.host}", f"{name.namespace}/{name.model}")

    def url(self, tail: str) -> str:
        return f"{self.base}/v2/{self.path}/{tail}"


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "bearer" or "basic", lower-cased
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="...",service="...",scope="..."`` -> Challenge; None if unusable."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def registry_message(response: httpx.Response) -> str:
    """The registry's own words: ``{"errors":[{"code","message"}]}``, else the status line."""
    try:
        body = json.loads(response.content)
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("message") or first.get("code") or "").strip() or response.reason_phrase
    except (ValueError, httpx.ResponseNotRead):
        pass
    return f"{response.status_code} {response.reason_phrase}"


class RegistryClient:
    """One repository on one registry. Use as ``async with RegistryClient(...) as client``."""

    def __init__(
        self,
        repo: Repository,
        *,
        credentials: Credentials | None = None,
        push: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.repo = repo
        self._credentials = credentials
        self._scope = f"repository:{repo.path}:{'pull,push' if push else 'pull'}"
        self._authorization: str | None = None
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(**TIMEOUT), follow_redirects=True, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    # --- requests with authentication ------------------------------------------------------------

    def _build(self, method: str, url: str, headers: dict[str, str] | None, content: object) -> httpx.Request:
        headers = dict(headers or {})
        if self._authorization:
            headers["Authorization"] = self._authorization
        return self._http.build_request(method, url, headers=headers, content=content)  # type: ignore[arg-type]

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: Callable[[], object] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send, answering one 401 challenge; ``content`` is a factory so a retry can resend."""
        for attempt in range(2):
            request = self._build(method, url, headers, content() if content else None)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise RegistryError(f"{self.repo.base}: {_transport_message(exc)}") from exc
            if response.status_code != 401:
                return response
            await response.aread()
            await response.aclose()
            if attempt == 1 or not await self._authenticate(response):
                raise RegistryAuthError(f"unauthorized: {registry_message(response)}")
        raise AssertionError("unreachable")

    async def _authenticate(self, response: httpx.Response) -> bool:
        """Set the Authorization header the challenge asks for; False when we have nothing new."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            if self._credentials is None:
                return False
            self._authorization = self._credentials.basic()
            return True
        if challenge.scheme == "bearer" and "realm" in challenge.params:
            self._authorization = f"Bearer {await self._token(challenge)}"
            return True
        return False

    async def _token(self, challenge: Challenge) -> str:
        params = {"scope": challenge.params.get("scope") or self._scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        headers = {"Authorization": self._credentials.basic()} if self._credentials else {}
        try:
            response = await self._http.get(challenge.params["realm"], params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"token server: {_transport_message(exc)}") from exc
        if response.status_code in (401, 403):
            raise RegistryAuthError(f"unauthorized: {registry_message(response)}")
        if response.status_code >= 400:
            raise RegistryError(f"token server: {registry_message(response)}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError("token server: no token in the answer")
        return token

    # --- manifests -------------------------------------------------------------------------------

    async def get_manifest(self, reference: str) -> bytes:
        """The manifest's exact bytes (their digest is the manifest's identity)."""
        response = await self._send("GET", self.repo.url(f"manifests/{reference}"),
                                    headers={"Accept": MANIFEST_ACCEPT})
        if response.status_code == 404:
            raise RegistryError("pull model manifest: file does not exist")
        if response.status_code >= 400:
            raise RegistryError(f"pull model manifest: {registry_message(response)}")
        return response.content

    async def put_manifest(self, reference: str, data: bytes, media_type: str) -> None:
        response = await self._send("PUT", self.repo.url(f"manifests/{reference}"),
                                    headers={"Content-Type": media_type}, content=lambda: data)
        if response.status_code >= 400:
            raise RegistryError(f"push manifest: {registry_message(response)}")

    # --- blobs -----------------------------------------------------------------------------------

    async def has_blob(self, digest: str) -> bool:
        response = await self._send("HEAD", self.repo.url(f"blobs/{digest}"))
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise RegistryError(f"check blob {digest}: {response.status_code} {response.reason_phrase}")
        return True

    @contextlib.asynccontextmanager
    async def blob_range(self, digest: str, start: int, end: int) -> AsyncIterator[AsyncIterator[bytes]]:
        """The bytes ``start..end`` (inclusive) of a blob, streamed."""
        response = await self._send("GET", self.repo.url(f"blobs/{digest}"),
                                    headers={"Range": f"bytes={start}-{end}"}, stream=True)
        try:
            if response.status_code == 404:
                raise RegistryError(f"pull blob {digest}: file does not exist")
            if response.status_code not in (200, 206):
                await response.aread()
                raise RegistryError(f"pull blob {digest}: {registry_message(response)}")
            if response.status_code == 200 and start > 0:
                # A registry that ignores Range sends the whole blob; reading it as the range
                # would corrupt the file, so refuse instead.
                raise RegistryError(f"pull blob {digest}: the registry does not support ranges")
            yield _translated(response.aiter_bytes())
        finally:
            await response.aclose()

    async def upload_blob(
        self, digest: str, size: int, chunks: Callable[[], AsyncIterator[bytes]]
    ) -> None:
        """POST for an upload session, PATCH the bytes, PUT ``?digest=`` to commit."""
        start = await self._send("POST", self.repo.url("blobs/uploads/"), headers={"Content-Length": "0"})
        if start.status_code != 202 or "Location" not in start.headers:
            raise RegistryError(f"push blob {digest}: {registry_message(start)}")
        location = urllib.parse.urljoin(str(start.url), start.headers["Location"])
        patched = await self._send(
            "PATCH", location,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size),
                     "Content-Range": f"0-{max(size - 1, 0)}"},
            content=chunks,
        )
        if patched.status_code != 202:
            raise RegistryError(f"push blob {digest}: {registry_message(patched)}")
        location = urllib.parse.urljoin(str(patched.url), patched.headers.get("Location", location))
        sep = "&" if "?" in location else "?"
        done = await self._send(
            "PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}",
            headers={"Content-Length": "0"},
        )
        if done.status_code != 201:
            raise RegistryError(f"push blob {digest}: {registry_message(done)}")


async def _translated(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.HTTPError as exc:
        raise RegistryError(_transport_message(exc)) from exc


def _transport_message(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return text[0].lower() + text[1:]


def is_transient(exc: RegistryError) -> bool:
    """A broken connection (worth resuming) rather than the registry's refusal."""
    return isinstance(exc.__cause__, httpx.TransportError)
