"""Debian's docker-registry (the CNCF distribution registry) on loopback, and a recording proxy.

    with run_registry(tmp) as reg:            # reg.host "127.0.0.1:PORT", reg.storage
        ...
    with run_registry(tmp, users={"alice": "pw"}) as reg:   # htpasswd (bcrypt) auth

The proxy sits between a puller and the registry to see what was asked (``requests``: method,
path, Range) and to break transfers on purpose: ``hold_after`` stalls every blob body after that
many bytes until ``release`` is set; ``drop_after`` cuts the first blob body after that many bytes. ``abandoned`` counts held
responses whose client hung up (how a test sees that a pull stopped).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import select
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from harness import tied_to_this_process
import pytest
from harness import terminate

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    host: str
    storage: Path
    process: subprocess.Popen[bytes]

    def blob_data(self, digest: str) -> Path:
        """The file the registry serves a blob from (filesystem driver layout)."""
        hexa = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"


@contextlib.contextmanager
def run_registry(workdir: Path, users: Mapping[str, str] | None = None) -> Iterator[Registry]:
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry apache2-utils)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    auth = ""
    if users:
        htpasswd = workdir / "htpasswd"
        for i, (user, password) in enumerate(users.items()):
            flags = "-Bbc" if i == 0 else "-Bb"  # bcrypt: the only format the registry takes
            subprocess.run(["htpasswd", flags, str(htpasswd), user, password], check=True,
                           capture_output=True)
        auth = f"auth:\n  htpasswd:\n    realm: llmd-test\n    path: {htpasswd}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: llmd-test-secret\n"
        + auth
    )
    log = (workdir / "registry.log").open("wb")
    process = subprocess.Popen([exe, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, preexec_fn=tied_to_this_process())
    reg = Registry(f"127.0.0.1:{port}", storage, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{(workdir / 'registry.log').read_text()}")
            try:
                httpx.get(f"http://{reg.host}/v2/", timeout=2.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.05)
        yield reg
    finally:
        terminate(process, 10)
        log.close()


@dataclass
class Proxy:
    host: str
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    hold_after: int | None = None
    drop_after: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    # token auth as ollama.com and Docker Hub do it: 401 with a Bearer challenge naming /token,
    # which hands out ``token`` to a client presenting ``token_basic`` (a Basic header) if set
    abandoned: int = 0  # held blob responses whose client hung up
    token: str | None = None
    token_basic: str | None = None
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def blob_ranges(self, digest: str) -> list[str]:
        return [r or "" for m, p, r in self.requests if m == "GET" and p.endswith(f"/blobs/{digest}")]


def _peer_closed(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@contextlib.contextmanager
def run_proxy(upstream: str) -> Iterator[Proxy]:
    """A forwarding HTTP proxy to ``upstream`` (host:port) for GET and HEAD."""
    proxy = Proxy(host="")
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _token_auth(self) -> bool:
            """Answer /token and refuse requests without the token; True when handled here."""
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/token":
                with lock:
                    proxy.token_requests.append(dict(urllib.parse.parse_qsl(url.query)))
                if proxy.token_basic and self.headers.get("Authorization") != proxy.token_basic:
                    self._reply(401, b'{"details":"incorrect username or password"}', {})
                else:
                    self._reply(200, json.dumps({"token": proxy.token}).encode(), {})
                return True
            if self.headers.get("Authorization") == f"Bearer {proxy.token}":
                return False
            repo = url.path.removeprefix("/v2/").rsplit("/", 2)[0]
            challenge = (f'Bearer realm="http://{proxy.host}/token",service="llmd-test",'
                         f'scope="repository:{repo}:pull"')
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            self._reply(401, body, {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
            return True

        def _forward(self) -> None:
            if proxy.token is not None and self._token_auth():
                return
            rng = self.headers.get("Range")
            with lock:
                proxy.requests.append((self.command, self.path, rng))
            conn = http.client.HTTPConnection(upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status, resp.reason)
            for key, value in resp.getheaders():
                if key.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.end_headers()
            is_blob = self.command == "GET" and "/blobs/" in self.path and resp.status in (200, 206)
            sent = 0
            drop = None
            if is_blob:
                with lock:
                    drop, proxy.drop_after = proxy.drop_after, None
            try:
                while chunk := resp.read(64 * 1024):
                    if is_blob and drop is not None and sent + len(chunk) > drop:
                        self.wfile.write(chunk[: drop - sent])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if is_blob and proxy.hold_after is not None and sent + len(chunk) > proxy.hold_after:
                        self.wfile.flush()
                        while not proxy.release.wait(0.05):
                            if _peer_closed(self.connection):
                                with lock:
                                    proxy.abandoned += 1
                                self.close_connection = True
                                return
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                self.close_connection = True
            finally:
                conn.close()

        do_GET = do_HEAD = _forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        server.shutdown()
        server.server_close()
