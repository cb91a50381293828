"""Listening sockets passed in by systemd (``llmd.socket``), ready for ``uvicorn.Server.serve``.

The sockets become ``socket.socket(fileno=fd)`` objects, which detect the real family. uvicorn's
``Config(fd=...)`` is never used: it wraps the fd as AF_UNIX, and uvicorn then skips TCP_NODELAY on
every connection, which delays streamed tokens (vllm-project/vllm#10012).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

HTTP_NAME = "http"  # FileDescriptorName= in units/llmd.socket

ListenFds = Callable[[], Mapping[int, str]]


def _listen_fds_with_names() -> Mapping[int, str]:
    from systemd import daemon

    # unset_environment (the default) drops LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES, so runner
    # processes started later never believe they were socket-activated.
    return daemon.listen_fds_with_names()  # type: ignore[no-any-return]


def activation_sockets(
    name: str | None = HTTP_NAME,
    listen_fds: ListenFds = _listen_fds_with_names,
) -> list[socket.socket]:
    """The passed listening sockets named ``name`` (all of them if None); [] when not activated.

    If none carries the name (a socket unit without ``FileDescriptorName=`` is named after the
    unit, e.g. ``llmd.socket``), every passed socket is used rather than none.
    """
    fds = dict(listen_fds())
    if not fds:
        return []
    chosen = [fd for fd, fd_name in fds.items() if name is None or fd_name == name]
    if not chosen:
        log.warning(
            "no passed socket has the expected name; serving on all of them",
            extra={"EXPECTED": name, "NAMES": ",".join(sorted(set(fds.values())))},
        )
        chosen = list(fds)
    sockets = []
    for fd in sorted(chosen):
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)  # runner processes must not hold the listener open
        sockets.append(sock)
    for fd in sorted(set(fds) - set(chosen)):
        # A socket we will not serve: close our copy so no connection waits on it in vain here;
        # systemd keeps its own.
        socket.socket(fileno=fd).close()
    return sockets


def describe(sock: socket.socket) -> str:
    """``http://127.0.0.1:11434`` (or ``unix:/path``) for the log line uvicorn skips with sockets=."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address!s}"
    host, port = address[0], address[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def log_listening(sockets: Sequence[socket.socket], activated: bool) -> None:
    for sock in sockets:
        log.info(
            "listening",
            extra={"ADDRESS": describe(sock), "ACTIVATION": "systemd" if activated else "bind"},
        )
