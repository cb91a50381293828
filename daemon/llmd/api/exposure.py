"""Secure by default off loopback: ``auth: none`` on a network address is refused at start.

Checked against the sockets llmd really serves (its own bind, or the ones systemd passed in), so
an ``llmd.socket`` drop-in with ``ListenStream=0.0.0.0:11434`` is caught as well as OLLAMA_HOST.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from llmd.config import Config
from llmd.errors import ConfigError


def network_addresses(sockets: Iterable[socket.socket]) -> list[str]:
    """``host:port`` of each listener reachable from beyond this machine (not loopback, not AF_UNIX)."""
    exposed = []
    for sock in sockets:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        host, port = sock.getsockname()[:2]
        address = ipaddress.ip_address(host.split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_loopback:
            exposed.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return exposed


def check_exposure(config: Config, exposed: Iterable[str], source: str) -> None:
    """ConfigError when ``config`` would serve ``exposed`` addresses with no key checks at all."""
    exposed = list(exposed)
    if config.auth != "none" or not exposed or config.allow_unauthenticated_network:
        return
    raise ConfigError(
        source, "auth",
        f"none would let anyone who reaches {', '.join(exposed)} delete, pull and push models; "
        "create a key (`llmctl key add NAME`, or `llmd key add NAME` offline) and use auth: "
        "loopback or required, or set allow_unauthenticated_network: true",
    )
