"""The ``llmd`` command: ``llmd serve``, ``llmd create NAME -f FILE``, ``llmd key ...``,
``llmd --version``.

This is the only place that wires objects together. Every LlmdError ends the process with one
line on stderr (``llmd: <source>: <key>: <problem>`` for configuration) and status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Sequence

import llmd
from llmd.config import Config, load_config
from llmd.errors import LlmdError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmd", description="Serve GGUF language models over an Ollama-compatible API."
    )
    parser.add_argument("--version", action="version", version=f"llmd version is {llmd.__version__}")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="YAML configuration file (default: /etc/llmd/llmd.yaml if it exists)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "serve",
        parents=[config],
        help="serve the API on OLLAMA_HOST (default 127.0.0.1:11434)",
        description="Serve the API until SIGINT or SIGTERM.",
    )
    create = commands.add_parser(
        "create",
        parents=[config],
        help="create a model in the local store from a Modelfile, without a running server",
        description="Create a model in the store (OLLAMA_MODELS) from a Modelfile.",
    )
    create.add_argument("name", metavar="NAME", help="model name, e.g. smollm2:135m")
    create.add_argument(
        "-f", "--file", type=Path, default=Path("Modelfile"), metavar="FILE",
        help="the Modelfile (default: ./Modelfile)",
    )
    _key_parsers(commands, config)
    return parser


def _key_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                 config: argparse.ArgumentParser) -> None:
    key = commands.add_parser(
        "key", help="manage API keys in the key file, without a running server",
        description="Create, list and remove API keys in the key file (beside the models "
        "directory, or $STATE_DIRECTORY/api-keys.json), as its owner or root, for provisioning "
        "scripts. A running llmd sees the change at its next request. With llmd running, "
        "`llmctl key` does the same over D-Bus.",
    )
    keys = key.add_subparsers(dest="key_command", metavar="COMMAND", required=True)
    add = keys.add_parser("add", parents=[config], help="create a key and print it (once)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--scope", action="append", default=[], metavar="SCOPE",
                     help="inference (default), models or all; repeatable")
    add.add_argument("--expires", default="", metavar="DURATION",
                     help='lifetime, e.g. "30d", "720h" (default: never)')
    add.add_argument("--max-concurrent", type=int, default=0, metavar="N",
                     help="requests in flight at once with this key (default: no limit)")
    keys.add_parser("list", parents=[config], help="the keys as JSON (never the keys themselves)")
    rm = keys.add_parser("rm", parents=[config], help="remove (revoke) a key")
    rm.add_argument("name", metavar="NAME")


def _key(config: Config, args: argparse.Namespace) -> None:
    import json

    from llmd.errors import InvalidRequest
    from llmd.keys import KeyStore, parse_lifetime, parse_scopes
    from llmd.keys.values import listing

    keys = KeyStore(config.api_keys_path)
    if args.key_command == "add":
        if args.max_concurrent < 0:
            raise InvalidRequest("--max-concurrent must not be negative")
        lifetime = parse_lifetime(args.expires)
        _, secret = keys.add(
            args.name, parse_scopes(args.scope), lifetime=lifetime,
            max_concurrent=args.max_concurrent,
        )
        print(secret)
        print(f"API key '{args.name}' created in {keys.path}. Save it now: it cannot be shown "
              "again.", file=sys.stderr)
    elif args.key_command == "list":
        keys.check()
        print(json.dumps([listing(*k.info()) for k in keys.keys()], indent=2))
    else:
        keys.remove(args.name)
        print(f"removed API key '{args.name}' from {keys.path}", file=sys.stderr)


def _setup_logging(config: Config) -> None:
    from llmd.system.journal import setup_logging

    # native journald records under systemd, "time level logger: message KEY=value" elsewhere
    setup_logging(config.debug)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve(config: Config, config_path: Path | None) -> None:
    from llmd.server import serve

    _setup_logging(config)
    # uvicorn handles SIGTERM while serving, then re-raises it once shut down; with the default
    # disposition that would kill us with -15. Exiting 0 instead also covers a SIGTERM that
    # arrives before uvicorn has installed its handler.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    asyncio.run(serve(config, config_path=config_path))


async def _create(config: Config, name: str, modelfile: Path) -> None:
    from llmd.server import open_store
    from llmd.store import create_from_modelfile

    await create_from_modelfile(
        open_store(config), name, modelfile, progress=lambda status: print(status, flush=True)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "serve":
            _serve(config, args.config)
        elif args.command == "create":
            asyncio.run(_create(config, args.name, args.file))
        elif args.command == "key":
            _key(config, args)
    except LlmdError as exc:
        print(f"llmd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an unreadable Modelfile or weights file
        print(f"llmd: {exc.filename or ''}: {(exc.strerror or str(exc)).lower()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
