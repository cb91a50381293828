"""A bus client run as another user by the tests: ``python caller.py ACTION [ARGS...]``.

Prints one JSON line: ``{"ok": result}`` or ``{"error": dbus_error_name, "message": ...}``.
Arguments are strings, except those written ``json:VALUE`` (``json:["models"]``, ``json:0``).
``listen N`` prints ``listening``, then one JSON line per Model(Un)Loaded signal, N in all.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from sdbus import SdBusBaseError, sd_bus_open_system

from llmd.bus.interface import BUS_NAME, OBJECT_PATH, Manager1


async def listen(manager: Manager1, count: int) -> None:
    queue: asyncio.Queue[list[Any]] = asyncio.Queue()

    async def pump(signal: Any, kind: str) -> None:
        async for args in signal.catch():
            await queue.put([kind, args] if isinstance(args, str) else [kind, *args])

    tasks = [
        asyncio.create_task(pump(manager.model_loaded, "loaded")),
        asyncio.create_task(pump(manager.model_unloaded, "unloaded")),
    ]
    for _ in range(3):
        await asyncio.sleep(0)
    await manager.version  # a round trip after the AddMatch calls: they are in place now
    print("listening", flush=True)
    for _ in range(count):
        print(json.dumps(await asyncio.wait_for(queue.get(), 60)), flush=True)
    for task in tasks:
        task.cancel()


async def main(action: str, *args: str) -> None:
    bus = sd_bus_open_system()
    manager = Manager1.new_proxy(BUS_NAME, OBJECT_PATH, bus)
    if action == "listen":
        await listen(manager, int(args[0]))
        return
    try:
        if action == "properties":
            result: Any = await manager.properties_get_all_dict()
        else:
            values = [json.loads(a[5:]) if a.startswith("json:") else a for a in args]
            result = await getattr(manager, action)(*values)
    except SdBusBaseError as exc:
        name = getattr(exc, "dbus_error_name", type(exc).__name__)
        print(json.dumps({"error": name, "message": str(exc.args[-1] if exc.args else exc)}))
        return
    print(json.dumps({"ok": result}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
