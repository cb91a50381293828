"""Choosing the passed sockets; the process-level path is in test_service_process.py."""

from __future__ import annotations

import socket

import pytest
from llmd.system.activation import activation_sockets, describe


def _listener(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0) if family == socket.AF_INET else ("::1", 0))
    sock.listen()
    return sock


def test_without_passed_sockets_there_is_nothing_to_serve_on() -> None:
    assert activation_sockets(listen_fds=dict) == []


def test_the_socket_named_http_is_chosen_and_the_others_are_closed() -> None:
    http, other = _listener(), _listener()
    port = http.getsockname()[1]
    fds = {http.detach(): "http", other.detach(): "metrics"}
    [chosen] = activation_sockets(listen_fds=lambda: fds)
    try:
        assert chosen.getsockname() == ("127.0.0.1", port)
        assert chosen.family == socket.AF_INET  # detected, not assumed AF_UNIX
        assert not chosen.get_inheritable()
    finally:
        chosen.close()
    other_fd = next(fd for fd, name in fds.items() if name == "metrics")
    with pytest.raises(OSError):
        socket.socket(fileno=other_fd)


def test_unnamed_sockets_are_all_served_rather_than_none() -> None:
    a, b = _listener(), _listener()
    fds = {a.detach(): "llmd.socket", b.detach(): "llmd.socket"}
    chosen = activation_sockets(listen_fds=lambda: fds)
    try:
        assert len(chosen) == 2
    finally:
        for sock in chosen:
            sock.close()


def test_addresses_are_described_as_urls() -> None:
    with _listener() as v4:
        assert describe(v4) == f"http://127.0.0.1:{v4.getsockname()[1]}"
    try:
        v6 = _listener(socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with v6:
        assert describe(v6) == f"http://[::1]:{v6.getsockname()[1]}"
