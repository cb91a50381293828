"""The HTTP client of llmctl: one httpx.Client at OLLAMA_HOST, errors raised as ServerError.

``transport`` is the test seam (httpx.MockTransport); tests mostly drive a live llmd
(tests/harness.py), since httpx's ASGITransport serves async clients only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import httpx

from llmd.config import parse_host
from llmctl.errors import DaemonUnreachable, ServerError

# Model operations (create, copy of a large model) can take minutes: only connecting is bounded.
TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=None, pool=10.0)
CHUNK = 1 << 20


def base_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return parse_host(env.get("OLLAMA_HOST", "")).connectable().url


def api_key_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """OLLAMA_API_KEY as the ollama Python client sends it, for an llmd that wants a key."""
    env = os.environ if environ is None else environ
    key = env.get("OLLAMA_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"{response.status_code} {response.reason_phrase}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return response.text.strip()


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        response.read()
        raise ServerError(response.status_code, _message(response))
    return response


class Client:
    def __init__(self, url: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url or base_url()
        self._http = httpx.Client(
            base_url=self.url, timeout=TIMEOUT, transport=transport, headers=api_key_headers()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return _check(self._http.request(method, path, **kwargs))
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise DaemonUnreachable(self.url) from None

    def heartbeat(self) -> None:
        """HEAD /, as every Ollama CLI command does first."""
        self._send("HEAD", "/")

    def get(self, path: str) -> Any:
        return self._send("GET", path).json()

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        response = self._send("POST", path, json=dict(body))
        return response.json() if response.content else None

    def delete(self, path: str, body: Mapping[str, Any]) -> None:
        self._send("DELETE", path, json=dict(body))

    def stream(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The objects of an NDJSON stream; an ``{"error": ...}`` line raises ServerError."""
        try:
            with self._http.stream("POST", path, json={**body, "stream": True}) as response:
                _check(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    if isinstance(obj, dict) and "error" in obj:
                        raise ServerError(response.status_code, str(obj["error"]))
                    yield obj
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise DaemonUnreachable(self.url) from None

    def has_blob(self, digest: str) -> bool:
        try:
            self._send("HEAD", f"/api/blobs/{digest}")
        except ServerError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def upload_blob(self, digest: str, path: Path, advance: Callable[[int], None]) -> None:
        """POST the file's bytes; ``advance`` is called with each chunk's size (a progress bar)."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    advance(len(chunk))
                    yield chunk

        size = path.stat().st_size
        self._send(
            "POST", f"/api/blobs/{digest}", content=chunks(), headers={"Content-Length": str(size)}
        )
