"""The YAML ``models:`` list: the models a host must have, pinned by manifest digest, preloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmd.config import DeclaredModel, load_config
from llmd.errors import ConfigError

PIN = "sha256:" + "ab" * 32


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None):
    path = tmp_path / "llmd.yaml"
    path.write_text(text)
    return load_config(path, environ=environ or {"HOME": str(tmp_path)})


def test_a_models_list_declares_pinned_and_preloaded_models(tmp_path: Path) -> None:
    config = _load(tmp_path, (
        "models:\n"
        f"  - name: reg.example:5000/library/smollm2:135m@{PIN}\n"
        "    preload: true\n"
        "    insecure: true\n"
        "  - qwen3:0.6b\n"
    ))
    assert config.declared_models == (
        DeclaredModel("reg.example:5000/library/smollm2:135m", PIN, preload=True, insecure=True),
        DeclaredModel("qwen3:0.6b"),
    )
    assert config.declared_models[0].reference.endswith(f"smollm2:135m@{PIN}")
    assert config.models == Path.home() / ".ollama" / "models"  # the directory keeps its default


def test_a_models_string_is_still_the_store_directory(tmp_path: Path) -> None:
    config = _load(tmp_path, f"models: {tmp_path / 'store'}\n")
    assert config.models == tmp_path / "store"
    assert config.declared_models == ()


def test_with_the_list_the_directory_is_models_dir_and_ollama_models_wins(tmp_path: Path) -> None:
    text = f"models_dir: {tmp_path / 'yaml'}\nmodels:\n  - smollm2:135m\n"
    assert _load(tmp_path, text).models == tmp_path / "yaml"
    config = _load(tmp_path, text, {"OLLAMA_MODELS": str(tmp_path / "env")})
    assert config.models == tmp_path / "env"
    assert config.declared_models == (DeclaredModel("smollm2:135m"),)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("models:\n  - name: smollm2@sha256:abc\n", "models: smollm2@sha256:abc: a pin is @sha256:"),
        ("models:\n  - name: smollm2\n    preload: yes please\n", "preload must be true or false"),
        ("models:\n  - name: smollm2\n    keep: 1\n", "unknown field 'keep'"),
        ("models:\n  - 3\n", "each entry must be a name"),
        ("models:\n  - name: two words\n", "name must be a model name"),
        ("models:\n  - a\n  - a\n", "a is listed twice"),
        ("models: /x\nmodels_dir: /y\n", "models_dir: the store's directory is given twice"),
    ],
)
def test_a_bad_models_entry_is_a_one_line_error(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert problem in str(err.value)
    assert "\n" not in str(err.value)
