"""Re-reading the configuration while serving (SIGHUP, ``systemctl reload llmd``, D-Bus).

``Reloader.reload()`` loads the same file as at start, validates it completely before touching
anything, then hands the new Config to every ``apply`` callback (the app's config holder, the
scheduler, the log level). A file that does not load changes nothing and raises the ConfigError,
whose one-line message names the file, the key and the problem.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmd.config import Config, load_config
from llmd.errors import LlmdError
from llmd.system import messages

log = logging.getLogger(__name__)

# Read at use by the scheduler, the routes, the middleware or the logger: safe to change live.
LIVE_KEYS = frozenset({
    "keep_alive", "max_loaded_models", "max_queue", "origins", "debug", "max_memory",
    "memory_fraction", "context_length", "num_parallel", "num_threads", "idle_exit",
    "drain_timeout", "load_timeout", "noprune", "prompt_cache", "kv_cache_type", "flash_attention",
    "auth", "allow_unauthenticated_network", "public_metrics", "metrics", "max_request_bytes",
    "max_num_ctx", "max_num_predict", "max_keep_alive", "max_messages", "max_stop",
    "max_stop_length", "min_free_disk",
})
# Bound into objects built at start (the listener, the store): they need a restart.
RESTART_KEYS = frozenset({"host", "models", "keys_file", "declared_models"})
_IGNORED = frozenset({"source"})


@dataclass(frozen=True, slots=True)
class ConfigChange:
    applied: tuple[str, ...]        # changed keys now in effect
    needs_restart: tuple[str, ...]  # changed keys that only a restart will apply


def compare(old: Config, new: Config) -> ConfigChange:
    changed = [
        f.name for f in dataclasses.fields(Config)
        if f.name not in _IGNORED and getattr(old, f.name) != getattr(new, f.name)
    ]
    return ConfigChange(
        applied=tuple(k for k in changed if k not in RESTART_KEYS),
        needs_restart=tuple(k for k in changed if k in RESTART_KEYS),
    )


Apply = Callable[[Config], object]
Load = Callable[[Path | None], Config]


class Reloader:
    """Holds the Config in effect and replaces it on ``reload()``."""

    def __init__(
        self,
        config: Config,
        path: Path | None,
        apply: Sequence[Apply] = (),
        load: Load = load_config,
    ) -> None:
        self.config = config
        self.path = path
        self._apply = list(apply)
        self._load = load
        self._lock = asyncio.Lock()

    def on_reload(self, apply: Apply) -> None:
        self._apply.append(apply)

    async def reload(self) -> Config:
        """Load, validate and apply the configuration; ConfigError (old config kept) if invalid."""
        async with self._lock:  # a second SIGHUP during a reload waits for the first
            try:
                new = await asyncio.to_thread(self._load, self.path)
            except LlmdError as exc:
                log.error(
                    "configuration not reloaded; keeping the previous one",
                    extra={"MESSAGE_ID": messages.CONFIG_RELOAD_FAILED, "ERROR": str(exc)},
                )
                raise
            change = compare(self.config, new)
            # Keys that need a restart keep their running value, so that what the daemon reports
            # as its Config stays what it actually does.
            kept = {k: getattr(self.config, k) for k in change.needs_restart}
            effective = dataclasses.replace(new, **kept) if kept else new
            self.config = effective
            for apply in self._apply:
                result = apply(effective)
                if asyncio.iscoroutine(result):
                    await result
            log.info(
                "configuration reloaded",
                extra={
                    "MESSAGE_ID": messages.CONFIG_RELOADED,
                    "CHANGED": ",".join(change.applied) or "none",
                    "SOURCE": new.source,
                },
            )
            if change.needs_restart:
                log.warning(
                    "configuration changes need a restart to take effect",
                    extra={"RESTART_NEEDED": ",".join(change.needs_restart)},
                )
            return effective
