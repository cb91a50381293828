"""The client side of ``create``: a Modelfile becomes an /api/create body plus blob uploads.

As Ollama's client does (parser.go ``CreateRequest``): a FROM or ADAPTER argument naming an
existing file (relative to the Modelfile, ``~`` expanded) is hashed and uploaded, and sent as
``files``/``adapters`` by its base name; anything else is a model name sent as ``from``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmd.errors import ModelfileError
from llmd.store import Modelfile, parse_modelfile

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


def _local(arg: str, base: Path) -> Path | None:
    path = Path(arg).expanduser()
    path = path if path.is_absolute() else base / path
    if path.is_dir():
        raise ModelfileError(f"{arg}: importing a directory (safetensors) is not supported")
    return path if path.is_file() else None


def plan_create(name: str, modelfile_path: Path) -> CreatePlan:
    """Parse the Modelfile and say what to upload and what to send; nothing is sent yet."""
    modelfile: Modelfile = parse_modelfile(modelfile_path.read_text(encoding="utf-8"))
    base = modelfile_path.resolve().parent
    uploads: list[Upload] = []
    body: dict[str, Any] = {"model": name}

    def upload(path: Path) -> str:
        digest = sha256_file(path)
        uploads.append(Upload(path, digest, path.stat().st_size))
        return digest

    source = _local(modelfile.from_, base)
    if source is None:
        body["from"] = modelfile.from_
    else:
        body["files"] = {source.name: upload(source)}
    adapters = {}
    for arg in modelfile.adapters:
        path = _local(arg, base)
        if path is None:
            raise ModelfileError(f"adapter {arg}: no such file")
        adapters[path.name] = upload(path)
    if adapters:
        body["adapters"] = adapters
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
