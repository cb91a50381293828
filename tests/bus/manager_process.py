"""The daemon side of the bus tests: ``export_manager`` on the bus in DBUS_SYSTEM_BUS_ADDRESS.

Run as the ``ollama`` user by the fixtures: ``python manager_process.py MODELS_DIR``. Prints
``ready`` once the name is owned (or ``no-bus`` when it could not be), then serves until SIGTERM.
Uses the real Store and Scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from llmd.config import load_config
from llmd.provision import Provisioner
from llmd.scheduler import Scheduler
from llmd.store import Store


def components(models: Path) -> tuple[Any, Any, Any]:
    empty = models.parent / "llmd.yaml"
    # LLMD_TEST_CONFIG: YAML for the daemon (a models: list, say); none by default
    empty.write_text(os.environ.get("LLMD_TEST_CONFIG", ""))
    config = load_config(empty, {"OLLAMA_MODELS": str(models), "OLLAMA_KEEP_ALIVE": "5m"})
    return config, Store(config.models), Scheduler(config)


async def main(models: Path) -> None:
    config, store, scheduler = components(models)
    from llmd.bus.service import export_manager

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        await scheduler.start()
        stack.push_async_callback(scheduler.close)
        provisioner = Provisioner(config, store, scheduler) if config.declared_models else None
        service = await stack.enter_async_context(
            export_manager(config, store, scheduler, provisioner=provisioner))
        if provisioner is not None:
            task = asyncio.create_task(provisioner.run())
            stack.callback(task.cancel)
        print("ready" if service is not None else "no-bus", flush=True)
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sys.path.insert(0, str(Path(__file__).parent))
    asyncio.run(main(Path(sys.argv[1])))
