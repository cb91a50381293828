"""Blobs: verified on write, nothing kept on a mismatch, concurrent writers of one blob both win."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from llmd.errors import DigestMismatch, InvalidDigest
from llmd.store import Store, parse_digest
from llmd.store.blobs import file_digest


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[i : i + size]


def test_digests_parse_in_both_spellings() -> None:
    hexa = "AB" * 32
    assert parse_digest(f"sha256:{hexa}") == f"sha256:{hexa.lower()}"
    assert parse_digest(f"sha256-{hexa}") == f"sha256:{hexa.lower()}"
    for bad in ("sha256:abc", "md5:" + "a" * 64, "sha256:" + "g" * 64, ""):
        with pytest.raises(InvalidDigest, match="^invalid digest format$"):
            parse_digest(bad)


def test_file_digest_is_the_sha256_of_the_whole_file(tmp_path: Path) -> None:
    data = os.urandom(3_000_017)  # more than one read, the last one short
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == _digest(data)
    (tmp_path / "empty").write_bytes(b"")
    assert file_digest(tmp_path / "empty") == _digest(b"")
    with pytest.raises(FileNotFoundError):
        file_digest(tmp_path / "absent")


async def test_a_blob_is_written_under_its_digest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = os.urandom(3_000_000)
    digest = _digest(data)
    assert await store.write_blob(digest, _chunks(data, 70_000)) is True
    assert store.has_blob(digest)
    assert store.blob_path(digest) == tmp_path / "blobs" / ("sha256-" + digest[7:])
    assert store.blob_path(digest).read_bytes() == data
    assert await store.write_blob(digest, _chunks(data)) is False
    assert await store.verify(None) == []


async def test_a_mismatched_blob_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    expected = _digest(b"expected")
    with pytest.raises(DigestMismatch) as err:
        await store.write_blob(expected, _chunks(b"something else"))
    assert str(err.value) == f'digest mismatch, expected "{expected}", got "{_digest(b"something else")}"'
    assert list((tmp_path / "blobs").iterdir()) == []


async def test_an_interrupted_upload_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await store.write_blob(_digest(b"partial and more"), broken())
    assert list((tmp_path / "blobs").iterdir()) == []


async def test_concurrent_writers_of_the_same_blob_both_succeed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = os.urandom(2_500_000)
    digest = _digest(data)
    results = await asyncio.gather(*(store.write_blob(digest, _chunks(data, 50_000)) for _ in range(4)))
    assert True in results
    assert store.blob_path(digest).read_bytes() == data
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == ["sha256-" + digest[7:]]


async def test_importing_a_file_copies_it_under_its_digest(tmp_path: Path) -> None:
    source = tmp_path / "w.bin"
    source.write_bytes(b"weights" * 1000)
    store = Store(tmp_path / "models")
    digest = await store.import_file(source)
    assert digest == _digest(source.read_bytes())
    assert store.blob_path(digest).read_bytes() == source.read_bytes()


async def test_verify_reports_a_corrupted_blob(store: Store, smol_digest: str, gguf_path: Path) -> None:
    from llmd.store import CreateRequest, ModelName

    async for _ in store.create(CreateRequest(ModelName.parse("smol"), files={"m.gguf": smol_digest})):
        pass
    assert await store.verify(ModelName.parse("smol")) == []
    system = store.blob_path(smol_digest)
    os.unlink(system)  # break the hard link first: the seed is shared with other tests
    with gguf_path.open("rb") as src, system.open("wb") as dst:
        dst.write(src.read(1000) + b"corrupt")
    assert await store.verify(ModelName.parse("smol")) == [smol_digest]
