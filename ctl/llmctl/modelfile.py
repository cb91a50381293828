"""The client side of ``create``: a Modelfile becomes an /api/create body plus blob uploads.

As Ollama's client does (parser.go ``CreateRequest``): a FROM or ADAPTER argument naming an
existing file (relative to the Modelfile, ``~`` expanded; the store's ``resolve_sources``
decides) is hashed and uploaded, and sent as ``files``/``adapters`` by its base name; anything
else is a model name sent as ``from``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd.store import Modelfile, parse_modelfile, resolve_sources

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Upload:
    path: Path
    digest: str  # "sha256:<hex>"
    size: int


@dataclass(frozen=True, slots=True)
class CreatePlan:
    body: dict[str, Any]
    uploads: tuple[Upload, ...] = field(default=())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def plan_create(name: str, modelfile_path: Path) -> CreatePlan:
    """Parse the Modelfile and say what to upload and what to send; nothing is sent yet."""
    modelfile: Modelfile = parse_modelfile(modelfile_path.read_text(encoding="utf-8"))
    sources = resolve_sources(modelfile, modelfile_path.resolve().parent)
    uploads: list[Upload] = []
    body: dict[str, Any] = {"model": name}

    def upload(path: Path) -> str:
        digest = sha256_file(path)
        uploads.append(Upload(path, digest, path.stat().st_size))
        return digest

    if sources.model_file is not None:
        body["files"] = {sources.model_file.name: upload(sources.model_file)}
    else:
        body["from"] = modelfile.from_
    if sources.adapter_files:
        body["adapters"] = {path.name: upload(path) for path in sources.adapter_files}
    if modelfile.template is not None:
        body["template"] = modelfile.template
    if modelfile.system is not None:
        body["system"] = modelfile.system
    if modelfile.license:
        body["license"] = list(modelfile.license)
    if modelfile.parameters:
        body["parameters"] = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in modelfile.parameters.items()}
    if modelfile.messages:
        body["messages"] = [{"role": m.role, "content": m.content} for m in modelfile.messages]
    return CreatePlan(body, tuple(uploads))
