"""Pull and push between the store and a registry, with Ollama's progress lines.

Downloads lose nothing:

- A blob is fetched into ``blobs/sha256-<hex>-partial``; ``...-partial.json`` records, per part,
  how many bytes are durably written (saved only after an fsync, so it may under-count, never
  over-count). A dropped connection resumes the part with ``Range`` at once; a restarted daemon
  resumes from the recorded offsets.
- Blobs over PARALLEL_OVER bytes are fetched as at least MIN_PARTS ranges at the same time.
- The digest is checked before the blob is renamed to its final name; a mismatch removes the
  partial file ("must be downloaded again") and writes nothing. The manifest is written last.
- Two pulls needing the same blob share one download (``Transfers._downloads``). A pull whose
  client goes away stops waiting; the download stops when nobody waits, and the partial file
  stays for the next pull.

The store's ``*-partial`` files never match its blob or temp-file patterns, so neither its
startup cleaning nor its prune touch them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmd.errors import LlmdError, ModelNotFound, PinMismatch, RegistryError
from llmd.store.blobs import CHUNK, file_digest, fsync_dir, temp_path
from llmd.store.digest import parse_digest, short
from llmd.store.manifest import Manifest
from llmd.store.names import ModelName
from llmd.store.progress import Progress
from llmd.store.registry import (
    DOCKER_MANIFEST,
    Credentials,
    RegistryClient,
    Repository,
    is_transient,
)
from llmd.store.store import Store

log = logging.getLogger(__name__)

PARALLEL_OVER = 64 * 1000 * 1000
MIN_PARTS = 4
MAX_PARTS = 16
PART_SIZE = 100 * 1000 * 1000  # above MIN_PARTS parts, one more per this many bytes
MAX_CONNECTIONS = 8  # ranges in flight across every download of this daemon
FLUSH = 2 * CHUNK  # bytes a part buffers before writing (and recording) them
RETRIES = 6  # attempts per part after a broken connection, as Ollama's maxRetries
PROGRESS_EVERY = 0.25  # seconds between progress lines while bytes move


@dataclass(frozen=True, slots=True)
class Target:
    """A model on a registry: its local name, the manifest reference to fetch, and how to connect."""

    name: ModelName
    reference: str  # the tag, or "sha256:<hex>" for a pull by digest
    insecure: bool = False
    credentials: Credentials | None = None
    pin: str | None = None  # "sha256:<hex>" the manifest fetched by tag must have (llmd.yaml)

    @classmethod
    def parse(cls, text: str, *, insecure: bool = False, credentials: Credentials | None = None) -> Target:
        """``[host/][ns/]model[:tag][@sha256:<hex>]``; InvalidModelName / InvalidDigest."""
        base, at, digest = text.partition("@")
        name = ModelName.parse(base)
        reference = parse_digest(digest) if at else name.tag
        return cls(name, reference, insecure, credentials)

    def client(self, *, push: bool = False) -> RegistryClient:
        repo = Repository.for_name(self.name, insecure=self.insecure)
        return RegistryClient(repo, credentials=self.credentials, push=push)


def partial_path(blobs_dir: Path, digest: str) -> Path:
    return blobs_dir / (parse_digest(digest).replace(":", "-") + "-partial")


# --- partial files -------------------------------------------------------------------------------


@dataclass
class Part:
    start: int
    end: int  # inclusive
    done: int = 0  # bytes durably written from start

    @property
    def remaining(self) -> int:
        return self.end + 1 - self.start - self.done


def plan_parts(total: int) -> list[Part]:
    if total <= PARALLEL_OVER:
        count = 1
    else:
        count = min(MAX_PARTS, max(MIN_PARTS, math.ceil(total / PART_SIZE)))
    size = math.ceil(total / count) if total else 0
    return [Part(s, min(s + size, total) - 1) for s in range(0, total, size)] if total else []


def load_parts(data: Path, state: Path, total: int) -> list[Part] | None:
    """The recorded parts of a partial file, or None when they cannot be trusted."""
    try:
        body = json.loads(state.read_text())
        size = data.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("total") != total or size != total:
        return None
    try:
        parts = [Part(int(p["start"]), int(p["end"]), int(p["done"])) for p in body["parts"]]
    except (KeyError, TypeError, ValueError):
        return None
    expected = 0
    for part in parts:
        if part.start != expected or part.remaining < 0 or part.done < 0:
            return None
        expected = part.end + 1
    return parts if expected == total else None


def save_parts(state: Path, total: int, parts: list[tuple[int, int, int]]) -> None:
    """Atomically record the parts (start, end, done)."""
    body = {"total": total, "parts": [{"start": s, "end": e, "done": d} for s, e, d in parts]}
    temp = temp_path(state.parent)
    try:
        temp.write_text(json.dumps(body))
        os.rename(temp, state)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_at(path: Path, offset: int, data: bytes) -> None:
    """pwrite and fsync; the file is opened per call so a cancelled download can't race a close."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare_partial(data: Path, state: Path, total: int) -> list[Part]:
    parts = load_parts(data, state, total)
    if parts is not None:
        return parts
    parts = plan_parts(total)
    with open(data, "wb") as f:
        f.truncate(total)
    save_parts(state, total, [(p.start, p.end, 0) for p in parts])
    return parts


def finish_partial(data: Path, state: Path, final: Path, digest: str) -> None:
    """Hash the partial file; rename it into place if it matches, else remove it and raise."""
    actual = file_digest(data)
    if actual != digest:
        data.unlink(missing_ok=True)
        state.unlink(missing_ok=True)
        raise RegistryError(f"digest mismatch, file must be downloaded again: want {digest}, got {actual}")
    os.rename(data, final)
    state.unlink(missing_ok=True)
    fsync_dir(final.parent)


# --- one shared download -------------------------------------------------------------------------


@dataclass
class Download:
    """A blob being fetched into its partial file; ``task`` ends when it is in the store."""

    digest: str
    total: int
    completed: int = 0
    fetched: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0
    task: asyncio.Task[None] | None = None


class Transfers:
    """Pulls and pushes for one Store; keeps the in-flight downloads so concurrent pulls share them."""

    def __init__(self, store: Store, *, connections: int = MAX_CONNECTIONS) -> None:
        self.store = store
        self._downloads: dict[str, Download] = {}
        self._connections = asyncio.Semaphore(connections)

    # --- pull ------------------------------------------------------------------------------------

    async def pull(self, target: Target) -> AsyncIterator[Progress]:
        """Ollama's PullModel: manifest, each layer, verify, write the manifest; raises LlmdError."""
        yield Progress("pulling manifest")
        async with target.client() as client:
            data = await client.get_manifest(target.reference)
        actual = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if target.reference.startswith("sha256:") and actual != target.reference:
            raise RegistryError(f"pull model manifest: digest mismatch: want {target.reference}, got {actual}")
        if target.pin is not None and actual != target.pin:
            raise PinMismatch(f"{target.name.short} is pinned to {target.pin}, but the registry's "
                              f"manifest for it is {actual}")
        try:
            manifest = Manifest.from_bytes(data)
        except (ValueError, LlmdError) as exc:
            raise RegistryError(f"pull model manifest: invalid manifest: {exc}") from None

        joined: list[Download] = []
        try:
            for layer in (*manifest.layers, manifest.config):
                if self.store.has_blob(layer.digest):
                    yield Progress(f"pulling {short(layer.digest)}", layer.digest, layer.size, layer.size)
                    continue
                download = self._join(target, layer.digest, layer.size)
                joined.append(download)
                async for progress in self._follow_download(download):
                    yield progress
            yield Progress("verifying sha256 digest")
            for download in joined:
                assert download.task is not None
                await asyncio.shield(download.task)
        finally:
            for download in joined:
                self._leave(download)
        yield Progress("writing manifest")
        await self.store.put_manifest(target.name, data)
        yield Progress("success")

    def _join(self, target: Target, digest: str, total: int) -> Download:
        download = self._downloads.get(digest)
        # one being cancelled (its last waiter left) is not joined: a fresh one resumes its file
        if download is None or download.task is None or download.task.done() or download.task.cancelling():
            download = Download(digest, total)
            self._downloads[digest] = download
            download.task = asyncio.create_task(self._download(target, download))
            download.task.add_done_callback(lambda _t, d=download: self._forget(d))
        download.waiters += 1
        return download

    def _forget(self, download: Download) -> None:
        if self._downloads.get(download.digest) is download:
            del self._downloads[download.digest]
        task = download.task
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: a failure nobody waited for is not logged as lost

    def _leave(self, download: Download) -> None:
        download.waiters -= 1
        if download.waiters == 0 and download.task is not None and not download.task.done():
            # nobody wants it any more: stop, keeping the partial file for the next pull
            download.task.cancel()

    async def _follow_download(self, download: Download) -> AsyncIterator[Progress]:
        status = f"pulling {short(download.digest)}"
        task = download.task
        assert task is not None
        last = -1
        while not download.fetched.is_set():
            if download.completed != last:
                last = download.completed
                yield Progress(status, download.digest, download.total, last)
            waiter = asyncio.ensure_future(download.fetched.wait())
            done, _ = await asyncio.wait({waiter, task}, timeout=PROGRESS_EVERY,
                                         return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task in done and not download.fetched.is_set():
                task.result()  # the download failed: raise its error here
        yield Progress(status, download.digest, download.total, download.total)

    async def _download(self, target: Target, download: Download) -> None:
        blobs = self.store.blob_path(download.digest).parent
        data = partial_path(blobs, download.digest)
        state = data.with_name(data.name + ".json")
        parts = await asyncio.to_thread(prepare_partial, data, state, download.total)
        download.completed = sum(p.done for p in parts)

        async def record() -> None:
            await asyncio.to_thread(save_parts, state, download.total, [(p.start, p.end, p.done) for p in parts])

        async with target.client() as client:
            fetches = [asyncio.create_task(self._fetch_part(client, download, data, part, record))
                       for part in parts if part.remaining > 0]
            try:
                # gather, not a TaskGroup: the first error is raised as itself, not in a group
                await asyncio.gather(*fetches)
            finally:
                for fetch in fetches:
                    fetch.cancel()
                await asyncio.gather(*fetches, return_exceptions=True)
        download.fetched.set()
        final = self.store.blob_path(download.digest)
        await asyncio.to_thread(finish_partial, data, state, final, download.digest)

    async def _fetch_part(
        self, client: RegistryClient, download: Download, data: Path, part: Part,
        record: Callable[[], Awaitable[None]],
    ) -> None:
        for attempt in range(RETRIES + 1):
            try:
                async with self._connections:
                    await self._fetch_range(client, download, data, part, record)
                return
            except RegistryError as exc:
                if not is_transient(exc) or attempt == RETRIES:
                    raise
                log.info("resuming a broken download",
                         extra={"digest": download.digest, "offset": part.start + part.done})
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))

    async def _fetch_range(
        self, client: RegistryClient, download: Download, data: Path, part: Part,
        record: Callable[[], Awaitable[None]],
    ) -> None:
        buffer = bytearray()
        unflushed = 0  # bytes counted in download.completed but not yet in part.done

        async def flush() -> None:
            nonlocal buffer, unflushed
            if buffer:
                chunk, buffer = bytes(buffer), bytearray()
                await asyncio.to_thread(write_at, data, part.start + part.done, chunk)
                part.done += len(chunk)
                unflushed -= len(chunk)
                await record()

        try:
            async with client.blob_range(download.digest, part.start + part.done, part.end) as chunks:
                async for chunk in chunks:
                    room = part.remaining - len(buffer)
                    chunk = chunk[:room]  # never write past the part, whatever the server sends
                    buffer += chunk
                    unflushed += len(chunk)
                    download.completed += len(chunk)
                    if len(buffer) >= FLUSH:
                        await flush()
            await flush()
        except RegistryError:
            with contextlib.suppress(OSError):
                await flush()  # keep what arrived before the break
            raise
        finally:
            download.completed -= unflushed  # bytes lost with a dropped buffer are fetched again
        if part.remaining > 0:
            raise RegistryError(f"pull blob {download.digest}: the registry sent too few bytes")

    # --- push ------------------------------------------------------------------------------------

    async def push(self, target: Target) -> AsyncIterator[Progress]:
        """Ollama's PushModel: each layer not already there, then the manifest; raises LlmdError."""
        yield Progress("retrieving manifest")
        data = await self.store.manifest_bytes(target.name)
        try:
            manifest = Manifest.from_bytes(data)
        except ValueError:
            raise ModelNotFound(f"model '{target.name.short}' not found") from None
        media_type = json.loads(data).get("mediaType") or DOCKER_MANIFEST
        async with target.client(push=True) as client:
            for layer in (*manifest.layers, manifest.config):
                status = f"pushing {short(layer.digest)}"
                if await client.has_blob(layer.digest):
                    yield Progress(status, layer.digest, layer.size, layer.size)
                    continue
                sent = [0]
                blob = self.store.blob_path(layer.digest)
                upload = asyncio.ensure_future(
                    client.upload_blob(layer.digest, layer.size, lambda b=blob, s=sent: _read_blob(b, s))
                )
                try:
                    while not upload.done():
                        yield Progress(status, layer.digest, layer.size, sent[0])
                        await asyncio.wait({upload}, timeout=PROGRESS_EVERY)
                    upload.result()
                finally:
                    upload.cancel()
                yield Progress(status, layer.digest, layer.size, layer.size)
            yield Progress("pushing manifest")
            await client.put_manifest(target.name.tag, data, media_type)
        yield Progress("success")


async def _read_blob(path: Path, sent: list[int]) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            sent[0] += len(chunk)
            yield chunk
    finally:
        f.close()
