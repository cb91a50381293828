"""``llmctl key add|list|rm``: llmd's API keys, managed over D-Bus (admin: root, group ollama or
polkit, as load and unload). The key itself is printed once, by ``add``, and never again."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from llmctl import bus_client
from llmctl.client import Client
from llmctl.errors import CtlError
from llmctl.format import human_time, table
from llmd.bus.interface import KeyInfo, Manager1
from llmd.keys import parse_lifetime
from llmd.keys.values import listing

ADMIN = "Needs root, the ollama group or polkit's org.llmd.manage."


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = subparsers.add_parser(
        "key", help="manage the API keys HTTP clients use (D-Bus, admin)",
        description="Create, list and remove llmd's API keys. " + ADMIN,
    )
    commands = key.add_subparsers(dest="key_command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "add", help="create a key and print it (once)",
        description="Create an API key and print it on stdout; it cannot be shown again. " + ADMIN,
    )
    p.add_argument("name", metavar="NAME", help="who or what the key is for, e.g. ci or alice")
    p.add_argument(
        "--scope", action="append", default=[], metavar="SCOPE",
        help="inference (default: generate, chat, embed, /v1, tags, show, ps), models (also "
        "create, copy, delete, blobs, pull, push) or all; repeatable",
    )
    p.add_argument(
        "--expires", default="", metavar="DURATION",
        help='lifetime, e.g. "30d", "720h", "90m" (default: never)',
    )
    p.add_argument(
        "--max-concurrent", type=int, default=0, metavar="N",
        help="requests in flight at once with this key; more get 429 (default: no limit)",
    )
    p.set_defaults(func=add, needs_server=False)

    p = commands.add_parser("list", aliases=["ls"], help="list the keys (never the keys themselves)")
    p.add_argument("--json", action="store_true", help="print the keys as JSON")
    p.set_defaults(func=list_keys, needs_server=False)

    p = commands.add_parser("rm", help="remove (revoke) a key; it is refused from the next request")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=remove, needs_server=False)


def add(args: argparse.Namespace, client: Client) -> None:
    lifetime = parse_lifetime(args.expires)
    if args.max_concurrent < 0:
        raise CtlError("llmctl: --max-concurrent must not be negative")

    async def action(manager: Manager1) -> str:
        return await manager.add_key(args.name, args.scope, lifetime, args.max_concurrent)

    secret = bus_client.call(action)
    print(secret)
    print(f"API key '{args.name}' created. Save it now: it cannot be shown again.",
          file=sys.stderr)


def _when(seconds: int, never: str) -> str:
    if not seconds:
        return never
    return human_time(datetime.fromtimestamp(seconds, timezone.utc))


def list_keys(args: argparse.Namespace, client: Client) -> None:
    async def action(manager: Manager1) -> list[KeyInfo]:
        return await manager.list_keys()

    keys = bus_client.call(action)
    if args.json:
        print(json.dumps([listing(*k) for k in keys], indent=2))
        return
    if not keys:
        print("No API keys. Create one with `llmctl key add NAME`.")
        return
    rows = [
        [name, ",".join(scopes), _when(created, "-"), _when(expires, "Never"),
         _when(used, "Never"), str(limit or "-")]
        for name, scopes, created, expires, used, limit in keys
    ]
    print(table(["NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "MAX CONCURRENT"], rows))


def remove(args: argparse.Namespace, client: Client) -> None:
    async def action(manager: Manager1) -> None:
        await manager.remove_key(args.name)

    bus_client.call(action)
    print(f"removed API key '{args.name}'")
