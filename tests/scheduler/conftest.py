"""Models for the scheduler tests: the real SmolLM2 GGUF under as many names as a test needs.

The scheduler reads four things of a ``llmd.store.Model``: ``name.short``, ``model_path``,
``model_digest`` (its identity) and ``info.metadata`` (for the memory estimate). These values carry
exactly those, with metadata read from the real file by llama.cpp's own GGUF reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from gguf import GGUFReader
from llmd.store.names import ModelName


@dataclass(frozen=True)
class ModelInfo:
    metadata: dict[str, object]


@dataclass(frozen=True)
class ModelValue:
    name: ModelName
    model_path: Path
    model_digest: str
    info: ModelInfo


MakeModel = Callable[..., ModelValue]


@pytest.fixture(scope="session")
def smollm_metadata(gguf_path: Path) -> dict[str, object]:
    reader = GGUFReader(gguf_path)
    return {
        key: field.contents()
        for key, field in reader.fields.items()
        if not key.startswith("tokenizer.ggml.")
    }


@pytest.fixture
def make_model(gguf_path: Path, smollm_metadata: dict[str, object]) -> MakeModel:
    def make(name: str, path: Path | None = None) -> ModelValue:
        # A distinct digest per name: the scheduler treats them as different models.
        digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        return ModelValue(
            ModelName.parse(name), path or gguf_path, digest, ModelInfo(smollm_metadata)
        )

    return make
