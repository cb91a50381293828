"""kill -9 during a create leaves the old model or the new one, never a half one.

A create runs in a child process with one function wrapped to announce that it has reached a
point (mid-copy, before the manifest, mid-rename) and wait there; the test then SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from llmd.store import CreateRequest, ModelName, Store

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from pathlib import Path
    import llmd.store.blobs as blobs
    import llmd.store.store as store_mod
    from llmd.store import CreateRequest, ModelName, Store

    root, point, source, digest = sys.argv[1:5]

    def stop_here():
        print("ready", flush=True)
        time.sleep(600)

    if point == "copying":
        real = blobs._write_all
        calls = []
        def write_all(fd, data):
            real(fd, data)
            calls.append(1)
            if len(calls) == 3:
                stop_here()
        blobs._write_all = write_all
    elif point == "before-manifest":
        real_write = store_mod.write_manifest
        def write_manifest(path, data):
            stop_here()
        store_mod.write_manifest = write_manifest
    elif point == "manifest-rename":
        real_rename = os.rename
        def rename(src, dst):
            if "/manifests/" in str(dst):
                stop_here()
            real_rename(src, dst)
        os.rename = rename

    async def main():
        store = Store(Path(root))
        files = {"m.gguf": digest}
        if point == "copying":
            files = {"m.gguf": await store.import_file(Path(source))}
        async for _ in store.create(CreateRequest(ModelName.parse("m"), files=files, system="new")):
            pass
        print("finished", flush=True)

    asyncio.run(main())
    """
)


def _kill_at(root: Path, point: str, source: Path, digest: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), point, str(source), digest],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


async def _create_old(root: Path, digest: str) -> None:
    req = CreateRequest(ModelName.parse("m"), files={"m.gguf": digest}, system="old")
    async for _ in Store(root).create(req):
        pass


@pytest.mark.parametrize("point", ["copying", "before-manifest", "manifest-rename"])
async def test_a_create_killed_midway_leaves_no_model_and_no_half_files(
    root: Path, gguf_path: Path, smol_digest: str, point: str
) -> None:
    if point == "copying":
        os.unlink(root / "blobs" / ("sha256-" + smol_digest[7:]))  # make the import really copy
    await asyncio.to_thread(_kill_at, root, point, gguf_path, smol_digest)

    store = Store(root)  # startup cleans up after the dead writer
    assert await store.list() == []
    assert _leftovers(root) == []
    assert await store.verify(None) == []


@pytest.mark.parametrize("point", ["before-manifest", "manifest-rename"])
async def test_a_replacing_create_killed_midway_leaves_the_old_model_whole(
    root: Path, gguf_path: Path, smol_digest: str, point: str
) -> None:
    await _create_old(root, smol_digest)
    await asyncio.to_thread(_kill_at, root, point, gguf_path, smol_digest)

    store = Store(root)
    [model] = await store.list()
    assert model.system == "old"
    assert _leftovers(root) == []
    assert await store.verify(None) == []
