"""Fixtures every test area shares: the real SmolLM2 GGUF."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GGUF = REPO / ".cache" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF that `make test` fetches."""
    path = Path(os.environ.get("MODEL_GGUF", DEFAULT_GGUF)).resolve()
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make model` (make test does it)")
    return path
