"""llmctl's D-Bus side: call ``org.llmd.Manager1`` on the system bus, errors as one line each.

    call(lambda manager: manager.unload("smollm2:135m"))

Bus failures become CtlError subclasses with their own exit code (llmctl/errors.py reports
them): no bus or no llmd running (UNREACHABLE), not installed (NOT_INSTALLED), refused
(ACCESS_DENIED), no answer (TIMEOUT). llmd's own errors arrive as the shared classes of
``llmd.bus.interface`` and keep llmd's message.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any, Awaitable, Callable, TypeVar

from sdbus import (
    DbusAccessDeniedError,
    DbusFailedError,
    DbusNameHasNoOwnerError,
    DbusNoReplyError,
    DbusServiceUnknownError,
    DbusTimeoutError,
    SdBus,
    SdBusBaseError,
    SdBusUnmappedMessageError,
    sd_bus_open_system,
)

from llmctl.errors import CtlError, ExitCode
from llmd.bus.interface import (
    BUS_NAME,
    OBJECT_PATH,
    AccessDeniedError,
    BusDaemon,
    LlmdBusError,
    Manager1,
)

T = TypeVar("T")

TIMEOUT_ENV = "LLMCTL_DBUS_TIMEOUT"
DEFAULT_TIMEOUT = 120.0  # seconds: Load reads a whole model before it answers


SYSTEM_BUS_DEFAULT = "unix:path=/run/dbus/system_bus_socket"


class BusUnreachable(CtlError):
    exit_code = ExitCode.UNREACHABLE

    def __init__(self, detail: str) -> None:
        # sd-bus reports "... returned error number: 2"; say it as the errno's text
        number = re.search(r"error number: (\d+)", detail)
        if number:
            detail = os.strerror(int(number.group(1))).lower()
        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_DEFAULT)
        super().__init__(f"llmctl: cannot connect to the system bus at {address}: {detail}")


class DaemonNotRunning(CtlError):
    exit_code = ExitCode.UNREACHABLE

    def __init__(self, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"llmctl: llmd is not running on the system bus{extra}: "
            "start it with `sudo systemctl start llmd.socket llmd.service`"
        )


class DaemonNotInstalled(CtlError):
    exit_code = ExitCode.NOT_INSTALLED

    def __init__(self) -> None:
        super().__init__(
            f"llmctl: llmd is not installed on this system ({BUS_NAME} is not on the system bus "
            "and cannot be activated)"
        )


class Denied(CtlError):
    exit_code = ExitCode.ACCESS_DENIED

    def __init__(self, message: str) -> None:
        super().__init__(f"Error: {message}")


class BusTimeout(CtlError):
    exit_code = ExitCode.TIMEOUT

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"llmctl: llmd did not answer within {seconds:g}s (set {TIMEOUT_ENV} to wait longer)"
        )


class RemoteError(CtlError):
    """An LlmdError raised in llmd, with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(f"Error: {message}")


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        value = DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def _message(exc: SdBusBaseError) -> str:
    args = exc.args
    return str(args[1] if len(args) > 1 else args[0] if args else exc)


def _translate(exc: BaseException, timeout: float) -> CtlError | None:
    """The CtlError for a failed bus call; None for something that is not a bus failure."""
    if isinstance(exc, AccessDeniedError):
        return Denied(_message(exc))
    if isinstance(exc, DbusAccessDeniedError):  # the bus policy, or sd-bus's privilege check
        return Denied(f"the system bus refused the call: {_message(exc)}")
    if isinstance(exc, LlmdBusError):
        return RemoteError(_message(exc))
    if isinstance(exc, (DbusNoReplyError, DbusTimeoutError, TimeoutError)):
        return BusTimeout(timeout)
    if isinstance(exc, (DbusServiceUnknownError, DbusNameHasNoOwnerError)):
        return DaemonNotRunning()
    if isinstance(exc, SdBusUnmappedMessageError):
        # org.freedesktop.DBus.Error.Spawn.*: activation was tried and failed
        name = str(exc.args[0]) if exc.args else ""
        if name.startswith("org.freedesktop.DBus.Error.Spawn") or name.startswith(
            "org.freedesktop.systemd1"
        ):
            return DaemonNotRunning(_message(exc))
        return RemoteError(_message(exc))
    if isinstance(exc, DbusFailedError):
        return RemoteError(_message(exc))
    if isinstance(exc, SdBusBaseError):
        return BusUnreachable(str(exc))
    return None


async def _ensure_reachable(bus: SdBus) -> None:
    """Tell "not installed" from "not running" before calling: stratis-cli's distinction."""
    daemon = BusDaemon.new_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", bus)
    if await daemon.name_has_owner(BUS_NAME):
        return
    if BUS_NAME not in await daemon.list_activatable_names():
        raise DaemonNotInstalled()
    # activatable: the call itself asks systemd to start llmd


async def _call(action: Callable[[Manager1], Awaitable[T]], timeout: float) -> T:
    try:
        bus = sd_bus_open_system()
    except (SdBusBaseError, OSError) as exc:
        raise BusUnreachable(str(exc)) from None
    bus.method_call_timeout_usec = int(timeout * 1_000_000)
    try:
        async with asyncio.timeout(timeout):
            await _ensure_reachable(bus)
            return await action(Manager1.new_proxy(BUS_NAME, OBJECT_PATH, bus))
    finally:
        bus.close()


def call(action: Callable[[Manager1], Awaitable[T]]) -> T:
    """Run ``action(manager)`` against llmd on the system bus; CtlError on any bus failure."""
    timeout = timeout_seconds()
    try:
        return asyncio.run(_call(action, timeout))
    except CtlError:
        raise
    except (SdBusBaseError, TimeoutError, OSError) as exc:
        translated = _translate(exc, timeout)
        if translated is None:
            raise
        raise translated from None


def properties(manager: Manager1) -> Awaitable[dict[str, Any]]:
    """Every property in one round trip, keyed by Python name (``loaded_models``...)."""
    return manager.properties_get_all_dict()
