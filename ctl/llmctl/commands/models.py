"""Model commands: create, list/ls, show, cp, rm."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from llmctl.client import Client
from llmctl.errors import ServerError
from llmctl.format import human_bytes, human_number, human_time, parse_time, table
from llmctl.modelfile import plan_create

SHOW_FIELDS = ("modelfile", "parameters", "template", "system", "license")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "create", help="create a model from a Modelfile",
        description="Create a model from a Modelfile: local files named by FROM or ADAPTER "
        "are uploaded to llmd first.",
    )
    p.add_argument("name", metavar="NAME", help="name of the new model, e.g. mymodel:latest")
    p.add_argument("-f", "--file", type=Path, default=Path("Modelfile"), metavar="FILE",
                   help="the Modelfile (default: ./Modelfile)")
    p.add_argument("-q", "--quantize", metavar="TYPE",
                   help="quantize an F16, BF16 or F32 model to q4_K_M, q4_K_S or q8_0")
    p.set_defaults(func=create)

    for alias in ("list", "ls"):
        p = subparsers.add_parser(alias, help="list models" if alias == "list" else "alias of list",
                                  description="List the models in llmd's store, newest first.")
        p.add_argument("prefix", nargs="*", metavar="PREFIX", help="only names starting with PREFIX")
        p.set_defaults(func=list_models)

    p = subparsers.add_parser("show", help="show information about a model",
                              description="Show a model's summary, or one of its fields.")
    p.add_argument("name", metavar="NAME")
    fields = p.add_mutually_exclusive_group()
    for name in SHOW_FIELDS:
        fields.add_argument(f"--{name}", action="store_true", help=f"show the model's {name}")
    p.add_argument("-v", "--verbose", action="store_true", help="show all model metadata")
    p.set_defaults(func=show)

    p = subparsers.add_parser("cp", help="copy a model", description="Copy a model to a new name.")
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DST")
    p.set_defaults(func=copy)

    p = subparsers.add_parser("rm", help="remove models",
                              description="Unload and remove models, and blobs no other model uses.")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=remove)


def _progress() -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False),
        TransferSpeedColumn(), console=console, transient=True, disable=not console.is_terminal,
    )


def create(args: argparse.Namespace, client: Client) -> None:
    plan = plan_create(args.name, args.file)
    if args.quantize:
        plan.body["quantize"] = args.quantize
    with _progress() as progress:
        for upload in plan.uploads:
            if client.has_blob(upload.digest):
                continue
            task = progress.add_task(f"copying file {upload.digest}", total=upload.size)
            client.upload_blob(upload.digest, upload.path,
                               lambda n, task=task: progress.advance(task, n))
    last = None
    for event in client.stream("/api/create", plan.body):
        status = event.get("status", "")
        if status != last:  # a quantization repeats its line with each step of progress
            print(status, flush=True)
        last = status


def list_models(args: argparse.Namespace, client: Client) -> None:
    models = client.get("/api/tags")["models"]
    rows = []
    for m in models:
        if args.prefix and not any(m["name"].startswith(p) for p in args.prefix):
            continue
        rows.append([m["name"], m["digest"][:12], human_bytes(m["size"]),
                     human_time(parse_time(m["modified_at"]))])
    print(table(["NAME", "ID", "SIZE", "MODIFIED"], rows))


def _summary(info: dict[str, Any]) -> str:
    model_info = info.get("model_info") or {}
    details = info.get("details") or {}
    arch = model_info.get("general.architecture") or details.get("family", "")
    rows = [["architecture", str(arch)]]
    if isinstance(model_info.get("general.parameter_count"), int):
        rows.append(["parameters", human_number(model_info["general.parameter_count"])])
    elif details.get("parameter_size"):
        rows.append(["parameters", str(details["parameter_size"])])
    for key, label in (("context_length", "context length"), ("embedding_length", "embedding length")):
        if f"{arch}.{key}" in model_info:
            rows.append([label, str(model_info[f"{arch}.{key}"])])
    if details.get("quantization_level"):
        rows.append(["quantization", str(details["quantization_level"])])
    sections = [("Model", rows)]
    if info.get("capabilities"):
        sections.append(("Capabilities", [[c] for c in info["capabilities"]]))
    if info.get("parameters"):
        params = [line.split(None, 1) for line in info["parameters"].splitlines() if line.strip()]
        sections.append(("Parameters", [[k, v] for k, v in params]))
    if info.get("system"):
        sections.append(("System", [[line] for line in info["system"].splitlines()[:2]]))
    if info.get("license"):
        sections.append(("License", [[line] for line in info["license"].splitlines()[:2]]))
    if info.get("warnings"):
        sections.append(("Warnings", [[line] for line in info["warnings"]]))
    out = []
    for title, body in sections:
        out.append(f"  {title}")
        out.extend("    " + line for line in table(body[0], body[1:]).splitlines())
        out.append("")
    return "\n".join(out)


def show(args: argparse.Namespace, client: Client) -> None:
    info = client.post("/api/show", {"model": args.name, "verbose": args.verbose})
    chosen = [name for name in SHOW_FIELDS if getattr(args, name)]
    if chosen:
        print(info.get(chosen[0], ""))
    else:
        print(_summary(info))


def copy(args: argparse.Namespace, client: Client) -> None:
    client.post("/api/copy", {"source": args.source, "destination": args.destination})
    print(f"copied '{args.source}' to '{args.destination}'")


def remove(args: argparse.Namespace, client: Client) -> None:
    for name in args.names:
        # Unload first, as ollama rm does; a model that is not loaded (or a daemon without
        # inference routes) answers "not found", which is no reason to warn.
        try:
            client.post("/api/generate", {"model": name, "keep_alive": 0, "stream": False})
        except ServerError as exc:
            if "not found" not in exc.message.lower():
                print(f"Warning: unable to stop model '{name}'", file=sys.stderr)
        client.delete("/api/delete", {"model": name})
        print(f"deleted '{name}'")
