"""The model store: Ollama's on-disk layout (manifests/ + blobs/), with async methods for the daemon.

Crash safety: blobs and manifests are written to temp files and renamed, and a create writes its
manifest last, so ``kill -9`` at any point leaves the old model or the new one. Temp files left by
dead writers are removed when the Store is constructed (``Store.__init__``), along with blobs no
manifest has used for an hour (Ollama's prune, unless ``noprune``).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path

from llmd.errors import InsufficientStorage, InvalidDigest, InvalidModelFile, ModelNotFound
from llmd.store import manifest as mf
from llmd.store.blobs import CHUNK, Blobs, clean_temp_files
from llmd.store.create import Status, TemplateCheck, build_layers
from llmd.store.digest import parse_digest
from llmd.store.gguf import GGUFInfo, read_gguf_info
from llmd.store.manifest import (
    Manifest,
    iter_manifests,
    remove_empty_dirs,
    write_manifest,
)
from llmd.store.models import BrokenManifest, CreateRequest, Model, read_model
from llmd.store.names import ModelName

log = logging.getLogger(__name__)

# Ollama's layerPruneGracePeriod: a blob uploaded for a create that has not happened yet is kept.
PRUNE_GRACE = 3600.0


@dataclass(frozen=True, slots=True)
class BlobCheck:
    """One blob hashed again (``/api/verify``): ``ok`` when it is there and matches its digest."""

    digest: str
    size: int
    ok: bool


class Store:
    def __init__(
        self,
        root: Path,
        *,
        noprune: bool = False,
        template_check: TemplateCheck | None = None,
    ) -> None:
        """Open (creating if needed) the store at ``root`` and clean up after crashed writers.

        Raises OSError when ``root`` cannot be created or read.
        """
        self.root = Path(root)
        self.noprune = noprune
        self._template_check = template_check
        self._blobs = Blobs(self.root / "blobs")
        self._blobs.dir.mkdir(parents=True, exist_ok=True)
        (self.root / "manifests").mkdir(parents=True, exist_ok=True)
        # GGUF summaries by blob digest: blobs never change, so the cache never goes stale
        self._info: dict[str, GGUFInfo] = {}
        # Serialises manifest changes with the reference counting that decides what to prune.
        self._lock = asyncio.Lock()
        self._clean_at_startup()

    # --- blobs -----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self._blobs.path(digest)

    def has_blob(self, digest: str) -> bool:
        return self._blobs.has(digest)

    def free_disk(self) -> int:
        stat = os.statvfs(self._blobs.dir)
        return stat.f_bavail * stat.f_frsize

    def _check_room(self, needed: int, min_free: int, written: int = 0) -> None:
        free = self.free_disk()
        if free - needed < min_free:
            raise InsufficientStorage(
                f"not enough disk space for the blob: {free} bytes free after {written} written, "
                f"{needed} more needed, {min_free} kept free (min_free_disk)"
            )

    async def write_blob(
        self, digest: str, chunks: AsyncIterator[bytes], *, size: int | None = None, min_free: int = 0
    ) -> bool:
        """Store a blob streamed in; False if it already existed. DigestMismatch keeps nothing.

        The upload must leave ``min_free`` bytes of disk free: a declared ``size`` is checked
        before the first byte, and the disk again as the bytes arrive; InsufficientStorage
        keeps nothing."""
        digest = parse_digest(digest)
        if size is not None:
            await asyncio.to_thread(self._check_room, size, min_free)
        temp, fd = await asyncio.to_thread(self._blobs.open_temp)
        hasher = hashlib.sha256()
        pending: list[bytes] = []
        pending_size = 0
        written = 0

        def flush(parts: list[bytes]) -> None:
            nonlocal written
            for part in parts:
                hasher.update(part)
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view):]
                written += len(part)
            self._check_room(0, min_free, written)

        try:
            async for chunk in chunks:
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= CHUNK:  # hash and write off the loop, a megabyte at a time
                    parts, pending, pending_size = pending, [], 0
                    await asyncio.to_thread(flush, parts)
            await asyncio.to_thread(flush, pending)
        except OSError as exc:
            os.close(fd)
            temp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise InsufficientStorage(f"not enough disk space for the blob: {exc.strerror}") from None
            raise
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        _, created = await asyncio.to_thread(self._blobs.commit, temp, fd, hasher, digest)
        return created

    async def import_file(self, path: Path) -> str:
        """Hash and copy a local file into the store; returns its ``sha256:`` digest."""
        return await asyncio.to_thread(self._blobs.import_file, Path(path))

    # --- reading ---------------------------------------------------------------------------------

    def _gguf_info(self, digest: str, path: Path) -> GGUFInfo:
        info = self._info.get(digest)
        if info is None:
            info = self._info[digest] = read_gguf_info(path)
        return info

    def _find(self, name: ModelName) -> tuple[ModelName, Path] | None:
        """The manifest for ``name``, matched case-insensitively, spelled as on disk."""
        exact = name.manifest_path(self.root)
        if exact.is_file():
            return name, exact
        key = name.casefold_key()
        for found, path in iter_manifests(self.root):
            if found.casefold_key() == key:
                return found, path
        return None

    def _read(self, name: ModelName, path: Path) -> Model:
        try:
            return read_model(name, path, self._blobs, self._gguf_info)
        except InvalidModelFile as exc:
            raise BrokenManifest(f"{path}: {exc}") from exc

    def _list(self) -> list[Model]:
        models = []
        for name, path in iter_manifests(self.root):
            try:
                models.append(self._read(name, path))
            except BrokenManifest as exc:
                log.warning("skipping an unusable manifest", extra={"model": name.short, "reason": str(exc)})
        models.sort(key=lambda m: m.modified_at, reverse=True)
        return models

    async def list(self) -> list[Model]:
        """Every usable model, newest first; unusable manifests are skipped with a log line."""
        return await asyncio.to_thread(self._list)

    def _get(self, name: ModelName) -> tuple[Model, Path]:
        found = self._find(name)
        if found is None:
            raise ModelNotFound(f"model '{name.short}' not found")
        try:
            return self._read(*found), found[1]
        except BrokenManifest as exc:
            log.warning("unusable manifest", extra={"model": name.short, "reason": str(exc)})
            raise ModelNotFound(f"model '{name.short}' not found") from None

    async def get(self, name: ModelName) -> Model:
        """The model named (case-insensitively); ModelNotFound."""
        model, _ = await asyncio.to_thread(self._get, name)
        return model

    async def manifest_bytes(self, name: ModelName) -> bytes:
        """The manifest of the model ``get`` finds, as written: what a push sends; ModelNotFound."""
        return await asyncio.to_thread(self._manifest_bytes, name)

    def _manifest_bytes(self, name: ModelName) -> bytes:
        _, path = self._get(name)
        try:
            return path.read_bytes()
        except OSError:
            raise ModelNotFound(f"model '{name.short}' not found") from None

    # --- changing --------------------------------------------------------------------------------

    async def create(self, req: CreateRequest) -> AsyncIterator[Status]:
        """Build a model as /api/create does, yielding Ollama's status lines; raises LlmdError."""
        async with self._lock:
            base = None
            if req.from_ is not None:
                base = await asyncio.to_thread(self._base, req.from_)
            steps = build_layers(req, self._blobs, base, self._template_check)
            try:
                while True:
                    status = await asyncio.to_thread(_step, steps)
                    if isinstance(status, Manifest):
                        manifest = status
                        break
                    yield status
            finally:
                # an abandoned create stops its quantizer child and removes its temp file
                await asyncio.to_thread(steps.close)
            yield "writing manifest"
            await asyncio.to_thread(self._replace_manifest, req.name, manifest)
        yield "success"

    def _base(self, name: ModelName) -> tuple[Manifest, dict[str, object], str]:
        found = self._find(name)
        if found is None:
            raise ModelNotFound(f"model '{name.short}' not found")
        try:
            manifest = Manifest.from_bytes(found[1].read_bytes())
            config = json.loads(self._blobs.path(manifest.config.digest).read_bytes())
        except (OSError, ValueError):
            raise ModelNotFound(f"model '{name.short}' not found") from None
        return manifest, config if isinstance(config, dict) else {}, found[0].short

    async def put_manifest(self, name: ModelName, data: bytes) -> None:
        """Write a pulled manifest as the registry sent it (its bytes are its digest), then
        prune the blobs only the manifest it replaced used; under the lock, like every change."""
        manifest = Manifest.from_bytes(data)
        async with self._lock:
            await asyncio.to_thread(self._replace_manifest, name, manifest, data)

    def _replace_manifest(self, name: ModelName, manifest: Manifest, data: bytes | None = None) -> None:
        found = self._find(name)  # keeps the spelling already on disk, as Ollama does
        path = found[1] if found else name.manifest_path(self.root)
        old = _read_manifest(path) if found else None
        write_manifest(path, manifest.to_bytes() if data is None else data)
        if old is not None and not self.noprune:
            self._remove_unreferenced(old.digests() - manifest.digests())

    def _remove_unreferenced(self, candidates: set[str]) -> None:
        if not candidates:
            return
        for _, path in iter_manifests(self.root):
            other = _read_manifest(path)
            if other is not None:
                candidates -= other.digests()
        for digest in candidates:
            self._blobs.remove(digest)

    async def copy(self, src: ModelName, dst: ModelName) -> None:
        """Give the model ``src`` a second name; ModelNotFound when there is no ``src``."""
        async with self._lock:
            await asyncio.to_thread(self._copy, src, dst)

    def _copy(self, src: ModelName, dst: ModelName) -> None:
        found = self._find(src)
        if found is None:
            raise ModelNotFound(f"model '{src.short}' not found")
        data = found[1].read_bytes()
        existing = self._find(dst)
        write_manifest(existing[1] if existing else dst.manifest_path(self.root), data)

    async def delete(self, name: ModelName) -> None:
        """Remove the manifest, its empty directories, then blobs no other manifest uses."""
        async with self._lock:
            await asyncio.to_thread(self._delete, name)

    def _delete(self, name: ModelName) -> None:
        found = self._find(name)
        if found is None:
            raise ModelNotFound(f"model '{name.short}' not found")
        path = found[1]
        old = _read_manifest(path)
        path.unlink()
        mf.fsync_dir(path.parent)
        remove_empty_dirs(path.parent, self.root / "manifests")
        if old is not None:
            self._remove_unreferenced(old.digests())

    async def check_blobs(self, name: ModelName | None) -> AsyncIterator[BlobCheck]:
        """Hash every blob of ``name`` (or of every model) again, in digest order; ModelNotFound."""
        sizes = await asyncio.to_thread(self._blob_sizes, name)
        for digest, size in sorted(sizes.items()):
            yield BlobCheck(digest, size, await asyncio.to_thread(self._blobs.verify, digest))

    async def verify(self, name: ModelName | None) -> list[str]:
        """Digests of the blobs (of ``name``, or of every model) that are missing or corrupt."""
        return [check.digest async for check in self.check_blobs(name) if not check.ok]

    def _blob_sizes(self, name: ModelName | None) -> dict[str, int]:
        if name is None:
            paths = [path for _, path in iter_manifests(self.root)]
        else:
            found = self._find(name)
            if found is None:
                raise ModelNotFound(f"model '{name.short}' not found")
            paths = [found[1]]
        sizes: dict[str, int] = {}
        for path in paths:
            try:
                manifest = Manifest.from_bytes(path.read_bytes())
            except (OSError, ValueError, InvalidDigest):
                continue  # an unreadable manifest names no blobs to check
            for layer in (*manifest.layers, manifest.config):
                sizes[layer.digest] = layer.size
        return sizes

    # --- startup ---------------------------------------------------------------------------------

    def _clean_at_startup(self) -> None:
        removed = clean_temp_files(self._blobs.dir)
        for dirpath, _, _ in os.walk(self.root / "manifests"):
            removed += clean_temp_files(Path(dirpath))
        if removed:
            log.info("removed temp files of interrupted writes", extra={"count": removed})
        if self.noprune:
            return
        referenced: set[str] = set()
        for _, path in iter_manifests(self.root):
            manifest = _read_manifest(path)
            if manifest is None:
                return  # an unreadable manifest might reference anything: prune nothing
            referenced |= manifest.digests()
        now = time.time()
        for digest in self._blobs.digests() - referenced:
            try:
                if now - self._blobs.path(digest).stat().st_mtime > PRUNE_GRACE:
                    self._blobs.remove(digest)
            except FileNotFoundError:
                pass


def _step(steps: Generator[Status, None, Manifest]) -> Status | Manifest:
    """One step of a generator, its return value included (StopIteration cannot cross a thread)."""
    try:
        return next(steps)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _read_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest.from_bytes(path.read_bytes())
    except (OSError, ValueError):
        return None

