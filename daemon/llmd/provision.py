"""The models llmd.yaml declares (``models:`` as a list): pulled when missing, checked against
their pin, preloaded, all in the background after start-up.

Until every declared model is in the store with its pinned manifest, and every ``preload: true``
one is resident, ``not_ready()`` names what is missing and ``/ready`` answers 503: a load balancer
keeps sending requests to the hosts that have it. A pin the registry does not serve is final (the
host stays out of the pool until its config or the registry is fixed and it is restarted); a
registry that cannot be reached is tried again, with a growing pause.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from llmd.config import Config, DeclaredModel
from llmd.errors import LlmdError, ModelNotFound, PinMismatch, RegistryError
from llmd.runner.options import build_options
from llmd.store import Model, ModelName, Store
from llmd.store.registry import is_transient
from llmd.store.transfer import Target, Transfers
from llmd.system import messages

if TYPE_CHECKING:
    from llmd.scheduler import Scheduler

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MOST = 1.0, 30.0  # seconds between tries of an unreachable registry

State = Literal["pending", "pulling", "loading", "ready", "failed", "pin mismatch"]


@dataclass(slots=True)
class Declared:
    """Where one declared model stands; ``problem`` says why when it failed."""

    model: DeclaredModel
    state: State = "pending"
    problem: str = ""


class Provisioner:
    def __init__(self, config: Config, store: Store, scheduler: Scheduler) -> None:
        self._config = config
        self._store = store
        self._scheduler = scheduler
        # one for all: declared models sharing a blob share its download
        self._transfers = Transfers(store)
        self.models = [Declared(d) for d in config.declared_models]

    def not_ready(self) -> str | None:
        """Why this host must not take traffic yet; None once every declared model is there."""
        for d in self.models:
            if d.state != "ready":
                detail = f": {d.problem}" if d.problem else ""
                return f"{d.model.name} {d.state}{detail}"
        return None

    async def run(self) -> None:
        """Provision every declared model; never raises (problems are in ``models``)."""
        # side by side: a registry that is down must not hold back a model from another one
        await asyncio.gather(*(self._run_one(d) for d in self.models))

    async def _run_one(self, d: Declared) -> None:
        try:
            await self._provision(d)
        except PinMismatch as exc:
            self._failed(d, "pin mismatch", str(exc))
        except LlmdError as exc:
            self._failed(d, "failed", str(exc))
        except OSError as exc:  # the store's disk: full, read-only, removed under us
            self._failed(d, "failed", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))

    async def _provision(self, d: Declared) -> None:
        name = ModelName.parse(d.model.name)
        model = await self._present(name, d.model.pin)
        if model is None:
            d.state = "pulling"
            await self._pull(d, name)
            d.problem = ""  # an unreachable registry's, now that it answered
            model = await self._store.get(name)
        if d.model.preload:
            d.state = "loading"
            load = build_options(model.parameters, None, default_num_ctx=self._config.context_length,
                                 num_parallel=self._config.num_parallel).load
            # kept resident for as long as the daemon runs: this host is there to serve it
            await self._scheduler.load(model, load, math.inf)
        d.state = "ready"
        log.info("declared model ready", extra={"MODEL": d.model.name, "DIGEST": model.digest,
                                                "PRELOADED": d.model.preload})

    async def _present(self, name: ModelName, pin: str | None) -> Model | None:
        """The stored model when it is there with the pinned manifest (any, unpinned)."""
        try:
            model = await self._store.get(name)
        except ModelNotFound:
            return None
        if pin is not None and f"sha256:{model.digest}" != pin:
            log.warning("declared model differs from its pin; pulling it again",
                        extra={"MODEL": name.short, "DIGEST": model.digest, "PIN": pin})
            return None
        return model

    async def _pull(self, d: Declared, name: ModelName) -> None:
        target = Target(name, name.tag, insecure=d.model.insecure, pin=d.model.pin)
        pause = RETRY_FIRST
        while True:
            try:
                async for _ in self._transfers.pull(target):
                    pass
                return
            except RegistryError as exc:
                if not is_transient(exc):
                    raise
                d.problem = str(exc)
                log.warning("registry unreachable; trying again",
                            extra={"MODEL": d.model.name, "ERROR": str(exc), "RETRY_IN": pause})
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MOST)

    def _failed(self, d: Declared, state: State, problem: str) -> None:
        d.state, d.problem = state, problem
        log.error("declared model not provisioned; this host stays not ready",
                  extra={"MESSAGE_ID": messages.DECLARED_MODEL_FAILED, "MODEL": d.model.name,
                         "PIN": d.model.pin or "", "STATE": state, "ERROR": problem})
