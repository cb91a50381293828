"""Who is calling, and may they change state? Answered from the bus daemon, never the caller.

Admin rights (DESIGN.md): uid 0, members of the ``ollama`` group (Ollama's installer adds the
installing user to it), or whoever polkit grants ``org.llmd.manage`` where polkitd runs.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from dataclasses import dataclass
from typing import Any

from sdbus import (
    DbusFailedError,
    DbusInterfaceCommonAsync,
    SdBus,
    SdBusBaseError,
    dbus_method_async,
)

from llmd.bus.interface import POLKIT_ACTION, AccessDeniedError, BusDaemon

log = logging.getLogger(__name__)

ADMIN_GROUP = "ollama"
POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
_ALLOW_USER_INTERACTION = 1


@dataclass(frozen=True, slots=True)
class Caller:
    sender: str  # the unique bus name, ":1.42"
    uid: int
    gids: frozenset[int]


class _PolkitAuthority(DbusInterfaceCommonAsync, interface_name="org.freedesktop.PolicyKit1.Authority"):
    @dbus_method_async(
        "(sa{sv})sa{ss}us", "(bba{ss})", method_name="CheckAuthorization"
    )
    async def check_authorization(
        self,
        subject: tuple[str, dict[str, tuple[str, Any]]],
        action_id: str,
        details: dict[str, str],
        flags: int,
        cancellation_id: str,
    ) -> tuple[bool, bool, dict[str, str]]:
        raise NotImplementedError


def _groups_of(uid: int) -> frozenset[int]:
    """Supplementary groups from the user database, for buses that do not report them."""
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return frozenset()
    return frozenset(os.getgrouplist(user.pw_name, user.pw_gid))


def admin_gid() -> int | None:
    try:
        return grp.getgrnam(ADMIN_GROUP).gr_gid
    except KeyError:
        return None


async def identify(bus: SdBus, sender: str) -> Caller:
    """The caller's uid and groups as the bus daemon saw them when it connected."""
    daemon = BusDaemon.new_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", bus)
    try:
        creds = await daemon.get_connection_credentials(sender)
    except DbusFailedError:
        # dbus-daemon before 1.7 has no GetConnectionCredentials
        uid = await daemon.get_connection_unix_user(sender)
        return Caller(sender, uid, _groups_of(uid))
    uid = int(creds["UnixUserID"][1])
    if "UnixGroupIDs" in creds:
        # the groups of the calling process, so a fresh `usermod -aG` needs a new login
        gids = frozenset(int(g) for g in creds["UnixGroupIDs"][1])
    else:
        gids = _groups_of(uid)
    return Caller(sender, uid, gids)


async def _polkit_allows(bus: SdBus, caller: Caller) -> bool:
    daemon = BusDaemon.new_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", bus)
    try:
        if not await daemon.name_has_owner(POLKIT_NAME):
            return False
        authority = _PolkitAuthority.new_proxy(POLKIT_NAME, POLKIT_PATH, bus)
        allowed, _challenge, _details = await authority.check_authorization(
            ("system-bus-name", {"name": ("s", caller.sender)}),
            POLKIT_ACTION,
            {},
            _ALLOW_USER_INTERACTION,
            "",
        )
    except SdBusBaseError as exc:
        log.warning("polkit check failed", extra={"error": str(exc), "uid": caller.uid})
        return False
    return bool(allowed)


async def is_admin(bus: SdBus, caller: Caller) -> bool:
    if caller.uid == 0:
        return True
    gid = admin_gid()
    if gid is not None and gid in caller.gids:
        return True
    return await _polkit_allows(bus, caller)


def denial(action: str) -> AccessDeniedError:
    return AccessDeniedError(
        f"permission denied: {action} needs root, membership of the {ADMIN_GROUP} group or "
        f"polkit's {POLKIT_ACTION}; to get access run `sudo usermod -aG {ADMIN_GROUP} $USER`, "
        "then log in again"
    )


async def require_admin(bus: SdBus, sender: str, action: str) -> Caller:
    """The caller, if they may change state; AccessDeniedError naming ``action`` otherwise."""
    caller = await identify(bus, sender)
    if not await is_admin(bus, caller):
        log.info("access denied", extra={"action": action, "uid": caller.uid})
        raise denial(action)
    return caller
