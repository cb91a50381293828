"""Admin commands over D-Bus: status, load, unload, reload. ``--json`` on each.

Reading (status) is open to every local user; the others need root, the ollama group or
polkit's org.llmd.manage, which llmd checks against the bus's credentials of the caller.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from typing import Any

from llmctl import bus_client
from llmctl.client import Client
from llmctl.format import human_bytes, human_time, table
from llmd.bus.interface import Manager1
from llmd.system import messages


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the result as JSON")

    p = subparsers.add_parser(
        "status", parents=[as_json], help="show the daemon's state (D-Bus)",
        description="Show llmd's version, uptime, loaded models, queue and memory budget, "
        "read from the system bus.",
    )
    p.set_defaults(func=status, needs_server=False)

    p = subparsers.add_parser(
        "load", parents=[as_json], help="load a model into memory (D-Bus, admin)",
        description="Preload a model. Needs root, the ollama group or polkit's org.llmd.manage.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--keep-alive", default="", metavar="D",
        help='how long to keep it loaded: "5m", "1h", "-1" pins it (default: the server\'s)',
    )
    p.set_defaults(func=load, needs_server=False)

    p = subparsers.add_parser(
        "unload", parents=[as_json], help="unload a model from memory (D-Bus, admin)",
        description="Unload a model now. Needs root, the ollama group or polkit's org.llmd.manage.",
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=unload, needs_server=False)

    p = subparsers.add_parser(
        "reload", parents=[as_json], help="reload the daemon's configuration (D-Bus, admin)",
        description="Re-read /etc/llmd/llmd.yaml and the environment and apply the result.",
    )
    p.set_defaults(func=reload, needs_server=False)


def _iso(seconds: int) -> str | None:
    if seconds == 0:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def _until(expiry: int) -> str:
    if expiry == 0:
        return "Forever"
    moment = datetime.fromtimestamp(expiry, timezone.utc)
    if moment < datetime.now(timezone.utc):
        return "Stopping..."
    return human_time(moment)


def _retry(retry_at: int) -> str:
    if retry_at == 0:
        return "on the next request"
    moment = datetime.fromtimestamp(retry_at, timezone.utc)
    seconds = max(0, int((moment - datetime.now(timezone.utc)).total_seconds()))
    return f"in {seconds}s"


def _done(args: argparse.Namespace, text: str, **fields: Any) -> None:
    if args.json:
        print(json.dumps({"status": "success", **fields}))
    else:
        print(text)


def status(args: argparse.Namespace, client: Client) -> None:
    props = bus_client.call(bus_client.properties)
    started = int(props["started_at"])
    cpus = {n: (variant, features) for n, variant, features in props.get("runner_cpus", [])}
    models = [
        {"name": n, "size": s, "expires_at": _iso(e), "in_flight": f,
         **({"cpu": {"variant": cpus[n][0], "features": cpus[n][1].split()}} if n in cpus else {})}
        for n, s, e, f in props["loaded_models"]
    ]
    # a daemon older than the property has none: nothing failed as far as we can tell
    failed = [
        {"name": n, "failures": count, "retry_at": _iso(retry) if retry else None, "status": st}
        for n, count, retry, st in props.get("failed_models", [])
    ]
    if args.json:
        print(json.dumps({
            "version": props["version"],
            "started_at": _iso(started),
            "uptime_seconds": max(0, int(time.time()) - started),
            "queue_depth": props["queue_depth"],
            "memory_budget": props["memory_budget"],
            "models": models,
            "failed": failed,
        }, indent=2))
        return
    up = human_time(datetime.fromtimestamp(started, timezone.utc)).removesuffix(" ago").lower()
    print(f"llmd {props['version']}, up {up}")
    print(f"Queue:         {props['queue_depth']} waiting")
    print(f"Memory budget: {human_bytes(int(props['memory_budget']))}")
    if not models:
        print("No models loaded.")
    else:
        rows = [
            [n, human_bytes(s), str(f), _until(e), cpus.get(n, ("",))[0]]
            for n, s, e, f in props["loaded_models"]
        ]
        print(table(["NAME", "SIZE", "IN FLIGHT", "UNTIL", "CPU"], rows))
    if failed:
        print()
        rows = [
            [n, f"crashed {count}x: {st}", _retry(retry)]
            for n, count, retry, st in props["failed_models"]
        ]
        print(table(["FAILED", "LAST EXIT", "RETRY"], rows))
        print(f"See journalctl -u llmd MESSAGE_ID={messages.RUNNER_CRASHED}; "
              "`llmctl load NAME` retries now.")


def load(args: argparse.Namespace, client: Client) -> None:
    async def action(manager: Manager1) -> None:
        await manager.load(args.name, args.keep_alive)

    bus_client.call(action)
    _done(args, f"loaded {args.name}", name=args.name)


def unload(args: argparse.Namespace, client: Client) -> None:
    async def action(manager: Manager1) -> None:
        await manager.unload(args.name)

    bus_client.call(action)
    _done(args, f"unloaded {args.name}", name=args.name)


def reload(args: argparse.Namespace, client: Client) -> None:
    async def action(manager: Manager1) -> None:
        await manager.reload_config()

    bus_client.call(action)
    _done(args, "configuration reloaded")
