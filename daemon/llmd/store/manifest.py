"""Manifests: Ollama's docker-v2-style JSON under ``<root>/manifests/<host>/<ns>/<model>/<tag>``.

A manifest is written last and atomically (temp file in the same directory, fsync, rename), so a
model either exists whole or not at all.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmd.errors import InvalidModelName
from llmd.store.blobs import TEMP_PREFIX, fsync_dir, temp_path
from llmd.store.digest import parse_digest
from llmd.store.names import ModelName

log = logging.getLogger(__name__)

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
_IMAGE = "application/vnd.ollama.image."
MODEL = _IMAGE + "model"
ADAPTER = _IMAGE + "adapter"
PROJECTOR = _IMAGE + "projector"
TEMPLATE = _IMAGE + "template"
PROMPT = _IMAGE + "prompt"  # the legacy name of the template layer
SYSTEM = _IMAGE + "system"
PARAMS = _IMAGE + "params"
MESSAGES = _IMAGE + "messages"
LICENSE = _IMAGE + "license"


class ManifestError(ValueError):
    """Bytes that are not a manifest we can use."""


@dataclass(frozen=True, slots=True)
class Layer:
    media_type: str
    digest: str  # "sha256:<hex>"
    size: int
    from_: str | None = None  # the model this layer was inherited from
    name: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.from_:
            out["from"] = self.from_
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, data: object) -> Layer:
        if not isinstance(data, dict):
            raise ManifestError("layer is not an object")
        size = data.get("size")
        if not isinstance(size, int):
            raise ManifestError("layer size is not a number")
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=parse_digest(str(data.get("digest", ""))),
            size=size,
            from_=data.get("from") or None,
            name=data.get("name") or None,
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]

    def to_bytes(self) -> bytes:
        # Go's json.Marshal: compact, in struct field order
        body = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """ValueError (or a subclass) when the bytes are not a manifest we can use."""
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("schemaVersion") != 2:
            raise ManifestError("not a schemaVersion 2 manifest")
        layers = body.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("manifest has no layers")
        return cls(Layer.from_json(body.get("config")), tuple(Layer.from_json(x) for x in layers))

    @property
    def size(self) -> int:
        """What /api/tags reports: the layers plus the config (manifest.go Size)."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def digests(self) -> set[str]:
        return {self.config.digest, *(layer.digest for layer in self.layers)}

    def layer(self, media_type: str) -> Layer | None:
        return next((x for x in self.layers if x.media_type == media_type), None)


def write_manifest(path: Path, data: bytes) -> None:
    """Atomically replace the manifest at ``path`` with ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path(path.parent)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
        fsync_dir(path.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def modified_at(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def iter_manifests(root: Path) -> Iterator[tuple[ModelName, Path]]:
    """Every manifest file as (name, path), spelled as on disk; temp files and junk skipped."""
    base = root / "manifests"
    for dirpath, dirnames, filenames in os.walk(base):
        rel = Path(dirpath).relative_to(base).parts
        dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
        if len(rel) != 3:
            continue  # a manifest lives exactly at host/namespace/model/tag
        for tag in filenames:
            if tag.startswith(TEMP_PREFIX):
                continue
            try:
                name = ModelName.parse(f"{rel[0]}/{rel[1]}/{rel[2]}:{tag}")
            except InvalidModelName:
                log.warning("skipping a manifest with an invalid name", extra={"path": dirpath})
                continue
            yield name, Path(dirpath) / tag


def remove_empty_dirs(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while empty, up to (not including) ``stop``."""
    current = path
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
