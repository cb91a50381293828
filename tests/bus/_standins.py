"""Stand-ins for the store and scheduler while those modules are not in the tree yet.

Same public shape as store/CONTRACT.md's Store.get/list/copy/delete and the scheduler's
load/unload/running; one model, ``smollm2:135m``. Not used once the real ones exist.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import llmd.store
from llmd.errors import InvalidModelName, ModelNotFound


@dataclass(frozen=True, slots=True)
class Name:
    model: str
    tag: str = "latest"

    @classmethod
    def parse(cls, text: str) -> Name:
        base, _, tag = text.partition(":")
        if not base or "/" in base or " " in text:
            raise InvalidModelName("invalid model name")
        return cls(base.lower(), (tag or "latest").lower())

    @property
    def short(self) -> str:
        return f"{self.model}:{self.tag}"


@dataclass(frozen=True, slots=True)
class Model:
    name: Name
    digest: str = "0" * 64
    parameters: dict[str, object] = field(default_factory=dict)
    size: int = 98_000_000
    modified_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass(frozen=True, slots=True)
class Running:
    model: Model
    size: int
    expires_at: float
    context_length: int
    in_flight: int = 0


def install_names() -> None:
    llmd.store.ModelName = Name  # type: ignore[attr-defined]


class StandinStore:
    def __init__(self) -> None:
        self.models = {"smollm2:135m": Model(Name("smollm2", "135m"))}

    async def get(self, name: Name) -> Model:
        try:
            return self.models[name.short]
        except KeyError:
            raise ModelNotFound(f'model "{name.short}" not found, try pulling it first') from None

    async def list(self) -> list[Model]:
        return list(self.models.values())

    async def copy(self, src: Name, dst: Name) -> None:
        self.models[dst.short] = Model(dst, size=(await self.get(src)).size)

    async def delete(self, name: Name) -> None:
        await self.get(name)
        del self.models[name.short]


class StandinScheduler:
    queue_depth = 0
    memory_budget = 8_000_000_000

    def __init__(self) -> None:
        self.loaded: dict[str, Running] = {}

    async def load(self, model: Model, options: Any, keep_alive: float) -> None:
        expires = math.inf if math.isinf(keep_alive) else time.time() + keep_alive
        self.loaded[model.name.short] = Running(model, model.size, expires, options.num_ctx)

    async def unload(self, model: Model) -> bool:
        return self.loaded.pop(model.name.short, None) is not None

    def running(self) -> list[Running]:
        return list(self.loaded.values())
