"""Store fixtures: a fresh store per test that already holds the SmolLM2 blob (hard-linked, so
the 98 MB file is copied once per session)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from llmd.store import Store


@pytest.fixture(scope="session")
def smol_digest(gguf_path: Path) -> str:
    h = hashlib.sha256()
    with gguf_path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


@pytest.fixture(scope="session")
def seeded_blob(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path, smol_digest: str) -> Path:
    """One copy of the GGUF, named as a blob, on the same filesystem as every tmp_path."""
    path = tmp_path_factory.mktemp("seed") / ("sha256-" + smol_digest.removeprefix("sha256:"))
    shutil.copyfile(gguf_path, path)
    return path


@pytest.fixture
def root(tmp_path: Path, seeded_blob: Path) -> Path:
    root = tmp_path / "models"
    (root / "blobs").mkdir(parents=True)
    os.link(seeded_blob, root / "blobs" / seeded_blob.name)
    return root


@pytest.fixture
def store(root: Path) -> Store:
    return Store(root)
