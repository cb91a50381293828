"""The D-Bus interface ``org.llmd.Manager1`` and its named errors, shared by llmd and llmctl.

llmd exports a subclass (``bus/service.py``) that overrides these members; llmctl calls
``Manager1.new_proxy(BUS_NAME, OBJECT_PATH, bus)`` on this very class. Sharing the error classes
matters: sdbus turns a reply named ``org.llmd.Error.AccessDenied`` back into ``AccessDeniedError``
only where that class is defined, otherwise it arrives as ``SdBusUnmappedMessageError``.

The interface only gains members; a breaking change is ``org.llmd.Manager2``.

Structs (signatures):
    loaded model  ``(sttu)``  name, size in bytes, expiry in unix seconds (0 = forever), in-flight
    running model ``(sttuu)`` the same, then the context length
    stored model  ``(sstt)``  name, digest (hex), size in bytes, modified in unix seconds
    failed model  ``(suts)``  name, runner crashes in a row, retry in unix seconds (0 = on the
                              next request), the last runner's exit ("signal: segmentation fault")
    runner cpu    ``(sss)``   name, ggml CPU variant ("native", "icelake"...), features in use
    API key       ``(sastttu)`` name, scopes, created, expires (0 = never), last used (0 = never)
                  in unix seconds, max requests in flight (0 = no limit); never the key itself
    declared model ``(sss)``  name as llmd.yaml's models: list gives it (pin included), state
                              (pending, pulling, loading, ready, failed, pin mismatch), problem
"""

from __future__ import annotations

from typing import Any

from sdbus import (
    DbusFailedError,
    DbusInterfaceCommonAsync,
    DbusUnprivilegedFlag,
    dbus_method_async,
    dbus_property_async,
    dbus_signal_async,
)

BUS_NAME = "org.llmd.Manager1"
OBJECT_PATH = "/org/llmd/Manager1"
INTERFACE_NAME = "org.llmd.Manager1"
ERROR_PREFIX = "org.llmd.Error."
POLKIT_ACTION = "org.llmd.manage"

LoadedModel = tuple[str, int, int, int]
RunningModel = tuple[str, int, int, int, int]
StoredModel = tuple[str, str, int, int]
FailedModel = tuple[str, int, int, str]
RunnerCpu = tuple[str, str, str]
KeyInfo = tuple[str, list[str], int, int, int, int]
DeclaredModel = tuple[str, str, str]


# --- errors: one class per name, ``org.llmd.Error.<Name>`` --------------------------------------


class LlmdBusError(DbusFailedError):
    """Any failure llmd reports over the bus; the message is the one an HTTP caller would get."""

    dbus_error_name = ERROR_PREFIX + "Failed"


class AccessDeniedError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "AccessDenied"


class InvalidRequestError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "InvalidRequest"


class InvalidModelNameError(InvalidRequestError):
    dbus_error_name = ERROR_PREFIX + "InvalidModelName"


class InvalidOptionError(InvalidRequestError):
    dbus_error_name = ERROR_PREFIX + "InvalidOption"


class ModelNotFoundError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "ModelNotFound"


class NotFoundError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "NotFound"


class QueueFullError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "QueueFull"


class InsufficientMemoryError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "InsufficientMemory"


class RunnerError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "RunnerError"


class RegistryError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "RegistryError"


class ConfigError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "ConfigError"


class NotSupportedError(LlmdBusError):
    dbus_error_name = ERROR_PREFIX + "NotSupported"


# --- the interface -------------------------------------------------------------------------------
# Every method carries DbusUnprivilegedFlag: on a system bus sd-bus otherwise rejects callers
# other than root and the owner before llmd sees the call. llmd authorizes each call itself.


class Manager1(DbusInterfaceCommonAsync, interface_name=INTERFACE_NAME):
    @dbus_property_async("s")
    def version(self) -> str:
        raise NotImplementedError

    @dbus_property_async("t")
    def started_at(self) -> int:
        """Unix seconds when the daemon started."""
        raise NotImplementedError

    @dbus_property_async("a(sttu)")
    def loaded_models(self) -> list[LoadedModel]:
        raise NotImplementedError

    @dbus_property_async("u")
    def queue_depth(self) -> int:
        raise NotImplementedError

    @dbus_property_async("t")
    def memory_budget(self) -> int:
        """Bytes the scheduler may fill with models."""
        raise NotImplementedError

    @dbus_property_async("a(suts)")
    def failed_models(self) -> list[FailedModel]:
        """Models whose runner crashed while loading or before its first answer, in a row."""
        raise NotImplementedError

    @dbus_property_async("a(sss)")
    def runner_cpus(self) -> list[RunnerCpu]:
        """What each loaded model's runner computes on."""
        raise NotImplementedError

    @dbus_property_async("a(sss)")
    def declared_models(self) -> list[DeclaredModel]:
        """The models llmd.yaml declares and how far each is: this host is ready once all are."""
        raise NotImplementedError

    @dbus_method_async(result_signature="a(sstt)", flags=DbusUnprivilegedFlag)
    async def list_models(self) -> list[StoredModel]:
        raise NotImplementedError

    @dbus_method_async(result_signature="a(sttuu)", flags=DbusUnprivilegedFlag)
    async def list_running(self) -> list[RunningModel]:
        raise NotImplementedError

    @dbus_method_async(input_signature="ss", flags=DbusUnprivilegedFlag)
    async def load(self, name: str, keep_alive: str) -> None:
        """Preload ``name``; keep_alive as Ollama takes it ("" = default, "-1" = pin).

        A model cooling down after a crash loop (FailedModels) is retried at once."""
        raise NotImplementedError

    @dbus_method_async(input_signature="s", flags=DbusUnprivilegedFlag)
    async def unload(self, name: str) -> None:
        raise NotImplementedError

    @dbus_method_async(input_signature="s", flags=DbusUnprivilegedFlag)
    async def delete(self, name: str) -> None:
        raise NotImplementedError

    @dbus_method_async(input_signature="ss", flags=DbusUnprivilegedFlag)
    async def copy(self, source: str, destination: str) -> None:
        raise NotImplementedError

    @dbus_method_async(input_signature="s", flags=DbusUnprivilegedFlag)
    async def pull(self, name: str) -> None:
        """Returns once pulled; progress arrives as PullProgress signals meanwhile."""
        raise NotImplementedError

    @dbus_method_async(flags=DbusUnprivilegedFlag)
    async def reload_config(self) -> None:
        raise NotImplementedError

    @dbus_method_async(
        input_signature="sastu", result_signature="s", flags=DbusUnprivilegedFlag
    )
    async def add_key(self, name: str, scopes: list[str], lifetime: int, max_concurrent: int) -> str:
        """A new API key, in this reply only. lifetime in seconds (0 = no expiry); scopes
        "inference", "models", "all" ([] = inference); max_concurrent 0 = no limit."""
        raise NotImplementedError

    @dbus_method_async(result_signature="a(sastttu)", flags=DbusUnprivilegedFlag)
    async def list_keys(self) -> list[KeyInfo]:
        raise NotImplementedError

    @dbus_method_async(input_signature="s", flags=DbusUnprivilegedFlag)
    async def remove_key(self, name: str) -> None:
        raise NotImplementedError

    @dbus_signal_async("s")
    def model_loaded(self) -> str:
        raise NotImplementedError

    @dbus_signal_async("ss")
    def model_unloaded(self) -> tuple[str, str]:
        """(name, reason): "requested", "expired", "evicted" or "crashed"."""
        raise NotImplementedError

    @dbus_signal_async("sstt")
    def pull_progress(self) -> tuple[str, str, int, int]:
        """(name, status, completed bytes, total bytes)."""
        raise NotImplementedError

    @dbus_signal_async()
    def config_reloaded(self) -> None:
        raise NotImplementedError


# --- the bus daemon itself ------------------------------------------------------------------------


class BusDaemon(DbusInterfaceCommonAsync, interface_name="org.freedesktop.DBus"):
    """What llmd (caller credentials) and llmctl (is llmd there or activatable?) ask the bus.

    One class for both: sdbus allows an interface name to be declared once per process."""

    @dbus_method_async("s", "a{sv}", method_name="GetConnectionCredentials")
    async def get_connection_credentials(self, name: str) -> dict[str, tuple[str, Any]]:
        raise NotImplementedError

    @dbus_method_async("s", "u", method_name="GetConnectionUnixUser")
    async def get_connection_unix_user(self, name: str) -> int:
        raise NotImplementedError

    @dbus_method_async("s", "b", method_name="NameHasOwner")
    async def name_has_owner(self, name: str) -> bool:
        raise NotImplementedError

    @dbus_method_async(result_signature="as", method_name="ListActivatableNames")
    async def list_activatable_names(self) -> list[str]:
        raise NotImplementedError
