"""Content-addressed blobs: ``<root>/blobs/sha256-<hex>``, written so that a crash leaves no half file.

Every write goes to a temp file in ``blobs/`` (same filesystem, so the rename is atomic), is hashed
while written, fsynced, checked against the digest and only then renamed into place. Two writers of
the same blob both succeed: the second rename replaces identical bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

from llmd.errors import BlobNotFound, DigestMismatch
from llmd.store.digest import blob_filename, parse_digest

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TEMP_PREFIX = ".tmp-"
# A temp file whose writer is gone is garbage; one older than this is garbage whoever wrote it
# (a pid can be reused).
STALE_AFTER = 24 * 3600


def temp_path(directory: Path) -> Path:
    """A fresh temp name; it carries our pid so startup cleaning can tell live writers apart."""
    return directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> str:
    """The ``sha256:<hex>`` of a file's bytes; blocking, so async callers run it in a thread."""
    with open(path, "rb") as f:
        return f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}"


def _writer_alive(name: str) -> bool:
    try:
        pid = int(name[len(TEMP_PREFIX):].split("-", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, just not ours
    return True


def clean_temp_files(directory: Path) -> int:
    """Remove temp files left by writers that died (kill -9, power loss); returns the count."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER
            if stale or not _writer_alive(entry.name):
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            pass
    return removed


class Blobs:
    """The ``blobs/`` directory. Blocking methods; the Store calls them via asyncio.to_thread."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, digest: str) -> Path:
        return self.dir / blob_filename(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f'blob "{parse_digest(digest)}" not found') from None

    def open_temp(self) -> tuple[Path, int]:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = temp_path(self.dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        return path, fd

    def commit(self, temp: Path, fd: int, hasher: hashlib._Hash, expected: str | None) -> tuple[str, bool]:
        """fsync, check the digest, rename into place. Returns (digest, created).

        The temp file is removed on any failure; a mismatch raises DigestMismatch.
        """
        try:
            os.fsync(fd)
            os.close(fd)
            fd = -1
            actual = f"sha256:{hasher.hexdigest()}"
            if expected is not None and actual != parse_digest(expected):
                raise DigestMismatch(f'digest mismatch, expected "{expected}", got "{actual}"')
            final = self.path(actual)
            existed = final.exists()
            os.rename(temp, final)
            fsync_dir(self.dir)
            return actual, not existed
        except BaseException:
            if fd >= 0:
                os.close(fd)
            temp.unlink(missing_ok=True)
            raise

    def write(self, chunks: Iterable[bytes], expected: str | None = None) -> tuple[str, bool]:
        """Write a blob from chunks; returns (digest, created)."""
        temp, fd = self.open_temp()
        hasher = hashlib.sha256()
        try:
            for chunk in chunks:
                hasher.update(chunk)
                _write_all(fd, chunk)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        return self.commit(temp, fd, hasher, expected)

    def write_bytes(self, data: bytes) -> tuple[str, bool]:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if self.has(digest):
            return digest, False  # content-addressed: same bytes, nothing to do
        return self.write([data], digest)

    def adopt(self, temp: Path) -> str:
        """Hash a temp file another process wrote in ``blobs/`` and rename it into place."""
        hasher = hashlib.sha256()
        fd = os.open(temp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while chunk := os.read(fd, CHUNK):
                hasher.update(chunk)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        return self.commit(temp, fd, hasher, None)[0]

    def import_file(self, source: Path) -> str:
        """Hash and copy a local file in; returns its digest."""
        with open(source, "rb") as f:
            return self.write(iter(lambda: f.read(CHUNK), b""))[0]

    def verify(self, digest: str) -> bool:
        """True when the blob's bytes still hash to its name."""
        try:
            return file_digest(self.path(digest)) == parse_digest(digest)
        except FileNotFoundError:
            return False

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> set[str]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return set()
        return {"sha256:" + n[7:] for n in names if n.startswith("sha256-") and len(n) == 71}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
