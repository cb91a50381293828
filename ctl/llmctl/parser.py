"""The argparse tables of llmctl, assembled from the command-group modules.

Adding a group (pull/push, run, ps, status...) is one module under ``llmctl/commands/`` with a
``register(subparsers)`` that calls ``subparsers.add_parser`` and ``set_defaults(func=...)``,
plus one line in COMMAND_GROUPS. ``func(args, client)`` returns nothing and raises on failure;
``set_defaults(needs_server=False)`` skips the heartbeat for commands that do not use HTTP.
"""

from __future__ import annotations

import argparse
import importlib

import llmd

COMMAND_GROUPS: tuple[str, ...] = (
    "llmctl.commands.models",
    "llmctl.commands.admin",
    "llmctl.commands.keys",
    "llmctl.commands.run",
    "llmctl.commands.completion",
    "llmctl.commands.registry",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmctl",
        description="Manage and use the models of an llmd server (OLLAMA_HOST, "
        "default 127.0.0.1:11434).",
    )
    parser.add_argument(
        "-v", "--version", action="version", version=f"llmctl version is {llmd.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_GROUPS:
        importlib.import_module(name).register(subparsers)
    return parser
