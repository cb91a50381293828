"""Registry commands: pull, push (Ollama's), and verify (hash the store's blobs again).

Credentials for a private registry come from ``LLMD_REGISTRY_AUTH=user:password`` and travel to
llmd in the request's ``username``/``password`` fields (Ollama's deprecated ones).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from llmctl.client import Client
from llmctl.format import human_bytes

AUTH_ENV = "LLMD_REGISTRY_AUTH"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = (
        ("pull", pull, "pull a model from a registry",
         "Download a model: [host/][namespace/]model[:tag], or a manifest by NAME@sha256:<hex>."),
        ("push", push, "push a model to a registry",
         "Upload a model, named [host/][namespace/]model[:tag] (llmctl cp gives it that name)."),
    )
    for command, func, help_text, description in commands:
        p = subparsers.add_parser(
            command, help=help_text,
            description=f"{description} For a private registry set {AUTH_ENV}=user:password.",
        )
        p.add_argument("name", metavar="NAME")
        p.add_argument("--insecure", action="store_true",
                       help="allow plain http (a registry without TLS)")
        p.set_defaults(func=func)

    p = subparsers.add_parser(
        "verify", help="check the store's blobs against their digests",
        description="Hash the blobs of a model (or of every model) again; exit 1 if any is corrupt.",
    )
    p.add_argument("name", nargs="?", metavar="NAME")
    p.set_defaults(func=verify)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"model": args.name, "insecure": args.insecure}
    user, sep, password = os.environ.get(AUTH_ENV, "").partition(":")
    if sep:
        body["username"], body["password"] = user, password
    return body


def _show(events: Iterator[dict[str, Any]]) -> None:
    """Status lines on stdout; per-layer bars on stderr when it is a terminal."""
    console = Console(stderr=True)
    bars: dict[str, TaskID] = {}
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False),
        TransferSpeedColumn(), console=console, disable=not console.is_terminal,
    )
    with progress:
        for event in events:
            status = str(event.get("status", ""))
            digest = event.get("digest")
            if not digest:
                progress.console.print(status) if console.is_terminal else print(status, flush=True)
                continue
            if digest not in bars:
                bars[digest] = progress.add_task(status, total=event.get("total") or None)
                if not console.is_terminal:
                    print(status, flush=True)
            progress.update(bars[digest], completed=event.get("completed", 0))


def pull(args: argparse.Namespace, client: Client) -> None:
    _show(client.stream("/api/pull", _body(args)))


def push(args: argparse.Namespace, client: Client) -> None:
    _show(client.stream("/api/push", _body(args)))


def verify(args: argparse.Namespace, client: Client) -> None:
    body = {"model": args.name} if args.name else {}
    # the last line is an error naming the corrupt blobs; Client.stream raises it (exit 1)
    for event in client.stream("/api/verify", body):
        if "digest" in event:
            state = "CORRUPT" if event.get("corrupt") else "ok"
            print(f"{state:8}{event['digest']}  {human_bytes(int(event.get('total', 0)))}", flush=True)
        else:
            print(event.get("status", ""), flush=True)
