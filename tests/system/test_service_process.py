"""``llmd serve`` as systemd runs it: a passed listening socket, sd_notify, SIGHUP, SIGTERM, idle exit."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from system.activated import (
    DEADLINE,
    NotifyListener,
    http_get,
    listening_socket,
    server_env,
    spawn_activated,
    wait_for_text,
)


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llmd.yaml"
    path.write_text(text)
    return path


def _server_fd_nodelay(pid: int, client: socket.socket) -> int | None:
    """TCP_NODELAY of llmd's end of ``client``, read through pidfd_getfd(2); None if not allowed."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pidfd < 0:
        return None
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                continue
            fd = libc.syscall(438, pidfd, int(name), 0)  # pidfd_getfd
            if fd < 0:
                return None
            with socket.socket(fileno=fd) as sock:
                try:
                    if sock.family == socket.AF_INET and sock.getpeername() == client.getsockname():
                        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                except OSError:
                    continue
    finally:
        os.close(pidfd)
    return None


def test_passed_socket_serves_the_first_connection_with_nodelay_and_logs_its_address(tmp_path: Path) -> None:
    listener = listening_socket()
    port = listener.getsockname()[1]
    log = tmp_path / "llmd.log"
    config = _config(tmp_path, "")
    process = spawn_activated(listener, ["--config", str(config)], server_env(tmp_path / "m"), log)
    try:
        # connect before llmd may even be up: the connection waits in the held socket's backlog
        status, body, conn = http_get(port, "/")
        assert (status, body) == (200, b"Ollama is running")
        nodelay = _server_fd_nodelay(process.pid, conn)
        conn.close()
        if nodelay is not None:
            assert nodelay != 0
        text = wait_for_text(log, "listening")
        assert f"ADDRESS=http://127.0.0.1:{port}" in text
        assert "ACTIVATION=systemd" in text
    finally:
        listener.close()
        assert _stop(process) == 0


def test_notify_socket_gets_ready_status_watchdog_reload_and_stopping_in_order(
    tmp_path: Path, notify: NotifyListener
) -> None:
    listener = listening_socket()
    log = tmp_path / "llmd.log"
    config = _config(tmp_path, "max_queue: 512\n")
    env = server_env(tmp_path / "m", {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
    process = spawn_activated(listener, ["--config", str(config)], env, log)
    listener.close()
    try:
        ready = notify.wait_for("READY=1")
        assert notify.messages == [ready]  # nothing before READY
        assert any(line.startswith("STATUS=serving") for line in ready.split("\n"))
        notify.wait_for("WATCHDOG=1")
        notify.wait_for("WATCHDOG=1")  # it keeps pinging

        config.write_text("max_queue: 7\n")
        process.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1")
        assert any(line.startswith("MONOTONIC_USEC=") for line in reloading.split("\n"))
        notify.wait_for("READY=1")

        process.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        assert process.wait(DEADLINE) == 0
    finally:
        _stop(process)
    order = [m for m in notify.messages if m != "WATCHDOG=1" and not m.startswith("STATUS=")]
    firsts = [m.split("\n")[0] for m in order]
    assert firsts == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_sighup_applies_a_changed_file_and_refuses_an_invalid_one(tmp_path: Path, notify: NotifyListener) -> None:
    listener = listening_socket()
    port = listener.getsockname()[1]
    log = tmp_path / "llmd.log"
    config = _config(tmp_path, "max_queue: 512\n")
    env = server_env(tmp_path / "m", {"NOTIFY_SOCKET": notify.path})
    process = spawn_activated(listener, ["--config", str(config)], env, log)
    listener.close()
    try:
        notify.wait_for("READY=1")
        url, origin = f"http://127.0.0.1:{port}/api/version", {"Origin": "http://example.com"}
        assert httpx.get(url, headers=origin, timeout=DEADLINE).status_code == 403
        config.write_text("max_queue: 7\nhost: 127.0.0.1:1\norigins: [http://example.com]\n")
        process.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1")
        text = wait_for_text(log, "configuration reloaded")
        assert "CHANGED=max_queue,origins" in text
        assert httpx.get(url, headers=origin, timeout=DEADLINE).status_code == 200  # CORS, live
        assert "RESTART_NEEDED=host" in text

        config.write_text("max_queue: lots\n")
        process.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1")
        text = wait_for_text(log, "configuration not reloaded")
        assert "max_queue: must be an integer" in text
        assert http_get(port, "/")[0] == 200  # still serving, on the old configuration

        # the refused file changed nothing: going back to 7 is no change at all
        config.write_text("max_queue: 7\nhost: 127.0.0.1:1\norigins: [http://example.com]\n")
        process.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1")
        wait_for_text(log, "CHANGED=none")
    finally:
        assert _stop(process) == 0


def test_idle_daemon_exits_zero_and_the_next_one_serves_the_connection_that_waited(
    tmp_path: Path, notify: NotifyListener
) -> None:
    listener = listening_socket()
    port = listener.getsockname()[1]
    log = tmp_path / "llmd.log"
    config = _config(tmp_path, "idle_exit: 500ms\n")
    env = server_env(tmp_path / "m", {"NOTIFY_SOCKET": notify.path})
    first = spawn_activated(listener, ["--config", str(config)], env, log)
    try:
        notify.wait_for("READY=1")
        assert http_get(port, "/")[0] == 200
        stopping = notify.wait_for("STOPPING=1")
        assert "STATUS=idle; exiting" in stopping.split("\n")
        assert first.wait(DEADLINE) == 0

        # no llmd runs now; like systemd, the test still holds the socket
        waiting = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        second = spawn_activated(listener, ["--config", str(config)], env, log)
        try:
            reply = waiting.recv(4096)
            assert reply.startswith(b"HTTP/1.1 200")
            waiting.close()
        finally:
            _stop(second)
    finally:
        listener.close()
        _stop(first)
