"""The exported ``org.llmd.Manager1`` object: a thin adapter over the scheduler and the store.

Arguments are validated here (names parsed, keep_alive parsed) and every LlmdError leaves as its
``org.llmd.Error.<Name>`` (``bus/errors.py``). Reading is open to everyone; each state change
asks ``bus/auth.py`` first.

``export_manager`` opens the *system* bus explicitly: ``sd_bus_open()`` would pick a session bus
when one is around. It runs on the caller's event loop (uvicorn's), and without a reachable
system bus it logs one warning and yields None, so HTTP is served anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

from sdbus import (
    SdBus,
    SdBusBaseError,
    dbus_method_async_override,
    dbus_property_async_override,
    get_current_message,
    sd_bus_open_system,
)

import llmd
from llmd.bus.auth import Caller, require_admin
from llmd.bus.errors import reported_on_bus
from llmd.bus.interface import (
    BUS_NAME,
    OBJECT_PATH,
    DeclaredModel,
    FailedModel,
    KeyInfo,
    LoadedModel,
    Manager1,
    RunnerCpu,
    RunningModel,
    StoredModel,
)
from llmd.config import Config, load_config, parse_keep_alive
from llmd.errors import InvalidOption, InvalidRequest, ModelNotFound
from llmd.inference.limits import check_keep_alive
from llmd import store as model_store
from llmd.keys import KeyStore, parse_scopes
from llmd.keys.values import MAX_LIFETIME
from llmd.runner.options import build_options
from llmd.runner.request import LoadOptions
from llmd.store.transfer import Target, Transfers

if TYPE_CHECKING:
    from llmd import scheduler as residency
    from llmd.provision import Provisioner
    from llmd.store import ModelName, Store

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
WATCH_INTERVAL = 1.0  # seconds between looks at the scheduler for loads and unloads not made here

Reload = Callable[[], Awaitable[Config] | Config]


def _unix_seconds(at: datetime | None) -> int:
    """A time on the bus: unix seconds, 0 for none (kept forever, or no retry scheduled)."""
    return 0 if at is None else int(at.timestamp())


def _parse_name(text: str) -> ModelName:
    return model_store.ModelName.parse(text)  # type: ignore[no-any-return]


async def _resolve(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


class ManagerService(Manager1):
    def __init__(
        self,
        config: Config,
        store: Store,
        scheduler: residency.Scheduler,
        *,
        reload: Reload | None = None,
        keys: KeyStore | None = None,
        provisioner: Provisioner | None = None,
    ) -> None:
        super().__init__()
        self._config = config
        self._store = store
        self._keys = keys if keys is not None else KeyStore(config.api_keys_path)
        self._provisioner = provisioner  # when models: is a list
        self._transfers: Transfers | None = None
        self._scheduler = scheduler
        self._reload = reload
        self._started_at = int(time.time())
        self._bus: SdBus | None = None
        self._running: list[residency.RunningModel] = []  # the last look at scheduler.running()
        self._announced: set[str] = set()
        self._last_expiry: dict[str, int] = {}

    # --- properties (read by anyone) -------------------------------------------------------

    @dbus_property_async_override()
    def version(self) -> str:
        return llmd.__version__

    @dbus_property_async_override()
    def started_at(self) -> int:
        return self._started_at

    @dbus_property_async_override()
    def loaded_models(self) -> list[LoadedModel]:
        return [row[:4] for row in self._running_rows()]  # type: ignore[misc]

    @dbus_property_async_override()
    def queue_depth(self) -> int:
        return self._scheduler.queue_depth

    @dbus_property_async_override()
    def memory_budget(self) -> int:
        return self._scheduler.memory_budget

    @dbus_property_async_override()
    def failed_models(self) -> list[FailedModel]:
        return [
            (f.name, int(f.failures), _unix_seconds(f.retry_at), f.status)
            for f in self._scheduler.failed()
        ]

    @dbus_property_async_override()
    def runner_cpus(self) -> list[RunnerCpu]:
        return [
            (r.model.name.short, r.cpu.variant, " ".join(r.cpu.features))
            for r in self._running
            if r.cpu is not None
        ]

    @dbus_property_async_override()
    def declared_models(self) -> list[DeclaredModel]:
        declared = self._provisioner.models if self._provisioner is not None else []
        return [(d.model.reference, d.state, d.problem) for d in declared]

    # --- reading methods ----------------------------------------------------------------

    @dbus_method_async_override()
    async def list_models(self) -> list[StoredModel]:
        with reported_on_bus():
            models = await self._store.list()
            return [
                (m.name.short, m.digest, m.size, int(m.modified_at.timestamp())) for m in models
            ]

    @dbus_method_async_override()
    async def list_running(self) -> list[RunningModel]:
        with reported_on_bus():
            await self._refresh()
            return self._running_rows()

    # --- state changes (admins only) ------------------------------------------------------

    @dbus_method_async_override()
    async def load(self, name: str, keep_alive: str) -> None:
        with reported_on_bus():
            await self._authorize(f"loading {name}")
            model = await self._store.get(_parse_name(name))
            seconds = self._keep_alive(keep_alive)
            await self._scheduler.load(model, self._load_options(model), seconds, retry_now=True)
            await self._refresh()
            self._announce_loaded(model.name.short)

    @dbus_method_async_override()
    async def unload(self, name: str) -> None:
        with reported_on_bus():
            await self._authorize(f"unloading {name}")
            model = await self._store.get(_parse_name(name))
            if not await self._scheduler.unload(model):
                raise ModelNotFound(f'couldn\'t find model "{name}" to stop')
            await self._refresh()
            self._announce_unloaded(model.name.short, "requested")

    @dbus_method_async_override()
    async def delete(self, name: str) -> None:
        with reported_on_bus():
            await self._authorize(f"deleting {name}")
            model_name = _parse_name(name)
            model = await self._store.get(model_name)
            if await self._scheduler.unload(model):
                await self._refresh()
                self._announce_unloaded(model.name.short, "deleted")
            await self._store.delete(model_name)

    @dbus_method_async_override()
    async def copy(self, source: str, destination: str) -> None:
        with reported_on_bus():
            await self._authorize(f"copying {source} to {destination}")
            await self._store.copy(_parse_name(source), _parse_name(destination))

    @dbus_method_async_override()
    async def pull(self, name: str) -> None:
        with reported_on_bus():
            await self._authorize(f"pulling {name}")
            target = Target.parse(name)
            if self._transfers is None:
                self._transfers = Transfers(self._store)
            async for line in self._transfers.pull(target):
                self.pull_progress.emit(
                    (name, line.status, line.completed or 0, line.total or 0)
                )

    def reconfigure(self, config: Config) -> None:
        """A Config reloaded elsewhere (SIGHUP): its keep_alive and defaults apply to Load."""
        self._config = config

    @dbus_method_async_override()
    async def reload_config(self) -> None:
        with reported_on_bus():
            await self._authorize("reloading the configuration")
            if self._reload is not None:
                config = await _resolve(self._reload())
            else:
                config = await asyncio.to_thread(load_config)
                self._scheduler.reconfigure(config)
            self._config = config
            self.config_reloaded.emit(None)

    # --- API keys (admins only, listing too: names and scopes say who may do what) -------------

    @dbus_method_async_override()
    async def add_key(self, name: str, scopes: list[str], lifetime: int, max_concurrent: int) -> str:
        with reported_on_bus():
            caller = await self._authorize(f"adding the API key {name}")
            if lifetime > MAX_LIFETIME:
                raise InvalidRequest("invalid expiry: at most 100 years (or 0: none)")
            key, secret = await asyncio.to_thread(
                self._keys.add, name, parse_scopes(scopes), lifetime=lifetime,
                max_concurrent=max_concurrent,
            )
            log.info("API key added", extra={
                "KEY_NAME": key.name, "SCOPES": ",".join(s.value for s in key.scopes),
                "BY_UID": caller.uid,
            })
            return secret

    @dbus_method_async_override()
    async def list_keys(self) -> list[KeyInfo]:
        with reported_on_bus():
            await self._authorize("listing the API keys")
            keys = await asyncio.to_thread(self._keys.keys)
            return [k.info() for k in keys]

    @dbus_method_async_override()
    async def remove_key(self, name: str) -> None:
        with reported_on_bus():
            caller = await self._authorize(f"removing the API key {name}")
            await asyncio.to_thread(self._keys.remove, name)
            log.info("API key removed", extra={"KEY_NAME": name, "BY_UID": caller.uid})

    # --- helpers ------------------------------------------------------------------------

    async def _authorize(self, action: str) -> Caller:
        assert self._bus is not None, "exported before use"
        return await require_admin(self._bus, get_current_message().sender, action)

    def _keep_alive(self, text: str) -> float:
        if not text.strip():
            return self._config.keep_alive
        text = text.strip()
        try:
            # a bare number is seconds, as in JSON's "keep_alive": -1; otherwise a Go duration
            seconds = parse_keep_alive(float(text) if _NUMBER.fullmatch(text) else text)
        except ValueError as exc:
            raise InvalidOption(str(exc)) from None
        check_keep_alive(seconds, self._config)
        return seconds

    def _load_options(self, model: Any) -> LoadOptions:
        """What an empty /api/generate for this model would load: its parameters, no request."""
        return build_options(
            model.parameters,
            None,
            default_num_ctx=self._config.context_length,
            num_parallel=self._config.num_parallel,
        ).load

    async def _refresh(self) -> None:
        self._running = self._scheduler.running()

    def _running_rows(self) -> list[RunningModel]:
        return [
            (
                r.model.name.short,
                int(r.size),
                _unix_seconds(r.expires_at),
                int(r.in_flight),
                int(r.context_length),
            )
            for r in self._running
        ]

    def _announce_loaded(self, name: str) -> None:
        if name not in self._announced:
            self._announced.add(name)
            self.model_loaded.emit(name)

    def _announce_unloaded(self, name: str, reason: str) -> None:
        if name in self._announced:
            self._announced.discard(name)
            self.model_unloaded.emit((name, reason))

    async def watch(self) -> None:
        """Signal loads and unloads made elsewhere (HTTP requests, keep_alive expiry, eviction)."""
        while True:
            try:
                await self._refresh()
            except Exception:
                log.exception("cannot read the scheduler's running models")
            else:
                now = time.time()
                rows = {row[0]: row for row in self._running_rows()}
                for name in rows.keys() - self._announced:
                    self._announce_loaded(name)
                for name in self._announced - rows.keys():
                    expiry = self._last_expiry.get(name, 0)
                    self._announce_unloaded(name, "expired" if 0 < expiry <= now else "evicted")
                self._last_expiry = {name: row[2] for name, row in rows.items()}
            await asyncio.sleep(WATCH_INTERVAL)

    def attach(self, bus: SdBus) -> None:
        self._bus = bus


@contextlib.asynccontextmanager
async def export_manager(
    config: Config,
    store: Store,
    scheduler: residency.Scheduler,
    *,
    reload: Reload | None = None,
    keys: KeyStore | None = None,
    provisioner: Provisioner | None = None,
    open_bus: Callable[[], SdBus] = sd_bus_open_system,
) -> AsyncIterator[ManagerService | None]:
    """Own ``org.llmd.Manager1`` on the system bus for the duration of the block."""
    try:
        bus = open_bus()
        await bus.request_name_async(BUS_NAME, 0)
    except (SdBusBaseError, OSError) as exc:
        log.warning(
            "D-Bus administration disabled: cannot own %s on the system bus",
            BUS_NAME,
            extra={"error": str(exc)},
        )
        yield None
        return
    service = ManagerService(
        config, store, scheduler, reload=reload, keys=keys, provisioner=provisioner
    )
    service.attach(bus)
    # Keep the handle: an exported object nobody references is garbage-collected and calls
    # then fail with "Unknown object".
    handle = service.export_to_dbus(OBJECT_PATH, bus)
    watcher = asyncio.create_task(service.watch(), name="llmd-bus-watch")
    try:
        yield service
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        handle.stop()
        bus.close()
