"""GGUF metadata from the real SmolLM2 file, and clear errors for files that are not GGUF."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from llmd.errors import InvalidModelFile
from llmd.store import GGUFArray, read_gguf_info
from llmd.store.gguf import file_type_name, human_number


def test_smollm2_metadata_is_read_without_the_weights(gguf_path: Path) -> None:
    info = read_gguf_info(gguf_path)
    assert info.architecture == "llama"
    assert info.parameter_count == 134_515_008
    assert info.parameter_size == "134.52M"
    assert info.file_type == "Q4_1"
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert info.bos_token == "<|im_start|>"
    assert info.eos_token == "<|im_end|>"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.pooling is False
    assert info.metadata["general.architecture"] == "llama"
    assert info.metadata["general.parameter_count"] == 134_515_008
    assert info.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-05


def test_long_arrays_are_kept_in_the_file_until_asked_for(gguf_path: Path) -> None:
    tokens = read_gguf_info(gguf_path).metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, GGUFArray)
    assert len(tokens) == 49152
    assert tokens.dtype == "string"
    values = tokens.tolist()
    assert values[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = read_gguf_info(gguf_path).metadata["tokenizer.ggml.token_type"]
    assert isinstance(types, GGUFArray) and len(types.tolist()) == 49152


def test_a_truncated_gguf_is_an_invalid_model_file(gguf_path: Path, tmp_path: Path) -> None:
    for size in (10, 1_000_000, os.path.getsize(gguf_path) - 1):
        cut = tmp_path / f"cut-{size}.gguf"
        with gguf_path.open("rb") as src:
            cut.write_bytes(src.read(size))
        with pytest.raises(InvalidModelFile, match="truncated"):
            read_gguf_info(cut)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (os.urandom(4096), "not a GGUF file"),
        (b"", "truncated"),
        (b"GGUF" + struct.pack("<I", 1) + bytes(16), "unsupported GGUF version 1"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 60), "truncated"),
    ],
)
def test_files_that_are_not_gguf_are_refused_clearly(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(InvalidModelFile, match=message):
        read_gguf_info(path)


@pytest.mark.parametrize(
    ("n", "text"),
    [(134_515_008, "134.52M"), (8_030_261_248, "8.0B"), (7_000_000_000, "7B"), (22_000, "22K"), (999, "999")],
)
def test_parameter_counts_read_like_ollamas(n: int, text: str) -> None:
    assert human_number(n) == text


def test_file_types_read_like_ollamas() -> None:
    assert [file_type_name(n) for n in (0, 1, 3, 15, 32, 999)] == ["F32", "F16", "Q4_1", "Q4_K_M", "BF16", "unknown"]
