"""Socket activation without systemd: the test holds the listening socket, as systemd does, and
starts ``llmd serve`` with it as fd 3 plus LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES; a fake
``$NOTIFY_SOCKET`` (an AF_UNIX datagram socket) receives what llmd tells the service manager.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import tied_to_this_process

DEADLINE = 60.0  # seconds before a wait is declared hung; never a timing assertion


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def spawn_activated(
    sock: socket.socket, args: list[str], env: dict[str, str], log: Path, name: str = "http"
) -> subprocess.Popen[bytes]:
    """``llmd serve ARGS`` with ``sock`` as fd 3, as systemd passes it (reference §6 layer 2)."""
    fd = sock.fileno()
    # bash, not sh: dash takes one-digit fds only
    move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
    # $$ is the pid exec keeps, so LISTEN_PID names llmd itself
    script = f'{move}LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES={name} exec "$@"'
    with log.open("ab") as out:
        return subprocess.Popen(
            ["/bin/bash", "-c", script, "bash", sys.executable, "-m", "llmd", "serve", *args],
            pass_fds=(fd,), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=tied_to_this_process(),
        )


def server_env(models: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OLLAMA_", "LISTEN_", "NOTIFY_", "WATCHDOG_", "JOURNAL_"))}
    env["OLLAMA_MODELS"] = str(models)
    # no system bus in tests: point D-Bus at nothing so the daemon only warns
    env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent/llmd-test-bus"
    env.update(extra or {})
    return env


class NotifyListener:
    """A fake $NOTIFY_SOCKET; ``path`` is short because sun_path holds 108 bytes."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="llmd-n")
        self.path = os.path.join(self._dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []

    def next(self, timeout: float = DEADLINE) -> str:
        self.sock.settimeout(timeout)
        message = self.sock.recv(4096).decode()
        self.messages.append(message)
        return message

    def wait_for(self, field: str, timeout: float = DEADLINE) -> str:
        """The next message holding the line ``field``; earlier ones are kept in ``messages``."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.1, deadline - time.monotonic()))
            if field in message.split("\n"):
                return message

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self._dir)


def wait_for_text(log: Path, text: str, timeout: float = DEADLINE) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in the log:\n{content}")
        time.sleep(0.05)


def http_get(port: int, path: str = "/", timeout: float = DEADLINE) -> tuple[int, bytes, socket.socket]:
    """A raw HTTP/1.1 GET; returns status, body and the still-open connection."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(4096)
    status = int(head.split(b" ")[1]) if head else 0
    return status, body, conn
