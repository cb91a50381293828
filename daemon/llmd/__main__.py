"""The ``llmd`` command: ``llmd serve``, ``llmd create NAME -f FILE``, ``llmd --version``.

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
    return parser


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
