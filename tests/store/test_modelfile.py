"""Modelfiles parse as Ollama's parser does, errors name the line, and /api/show renders one back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from llmd.errors import ModelfileError
from llmd.store import (
    Message,
    ModelName,
    format_modelfile,
    parse_modelfile,
    resolve_sources,
)
from llmd.store.gguf import GGUFInfo
from llmd.store.models import Model


def test_a_full_modelfile_parses_into_typed_values() -> None:
    text = (
        "\ufeff# a comment\n"
        "FROM ./model.gguf\n"
        "\n"
        "parameter temperature 0.2\n"
        "PARAMETER num_ctx 4096\n"
        'PARAMETER stop "<|im_end|>"\n'
        "PARAMETER stop <|im_start|>\n"
        "PARAMETER use_mmap false\n"
        'TEMPLATE """{{ .System }}\n{{ .Prompt }}"""\n'
        "SYSTEM You are terse.\n"
        "MESSAGE user Hello there\n"
        'MESSAGE assistant "Hi, \\"friend\\""\n'
        "LICENSE MIT\n"
        'LICENSE """Apache\nLicense"""\n'
        "ADAPTER ./lora.gguf\n"
        "REQUIRES 0.5.0\n"
    )
    mf = parse_modelfile(text)
    assert mf.from_ == "./model.gguf"
    assert mf.parameters == {
        "temperature": 0.2,
        "num_ctx": 4096,
        "stop": ["<|im_end|>", "<|im_start|>"],
        "use_mmap": False,
    }
    assert mf.template == "{{ .System }}\n{{ .Prompt }}"
    assert mf.system == "You are terse."
    assert mf.messages == (Message("user", "Hello there"), Message("assistant", 'Hi, "friend"'))
    assert mf.license == ("MIT", "Apache\nLicense")
    assert mf.adapters == ("./lora.gguf",)
    assert mf.requires == "0.5.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from smollm2", "smollm2"),
        ("FROM   smollm2:135m   ", "smollm2:135m"),
        ('FROM "my model.gguf"', "my model.gguf"),
        ("FROM a\nFROM b", "b"),  # the last FROM wins
        ("# only a comment\nFrOm x", "x"),
        ("FROM\tx\r\nSYSTEM hi\r\n", "x"),  # tabs and CRLF line ends
    ],
)
def test_from_takes_bare_quoted_and_case_insensitive_forms(text: str, expected: str) -> None:
    assert parse_modelfile(text).from_ == expected


def test_a_multi_line_system_keeps_its_newlines_and_inner_quotes() -> None:
    mf = parse_modelfile('FROM x\nSYSTEM """line one\nsay "hi"\n# not a comment\n"""')
    assert mf.system == 'line one\nsay "hi"\n# not a comment\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PARAMETER temperature 1", "no FROM line"),
        ("FROM x\nPARAMETER bogus 1", "line 2: unknown parameter 'bogus'"),
        ("FROM x\n\n# c\nPARAMETER temperature hot", "line 4: invalid float value [hot]"),
        ("FROM x\nPARAMETER num_ctx 4k", "line 2: invalid int value [4k]"),
        ("FROM x\nPARAMETER use_mmap maybe", "line 2: invalid bool value [maybe]"),
        ("FROM x\nMESSAGE tool hi", 'line 2: role must be one of "system", "user", or "assistant"'),
        ("FROM x\nFOO bar", (
            'line 2: command must be one of "from", "license", "template", "system", '
            '"adapter", "parameter", or "message"'
        )),
        ('FROM x\nSYSTEM """never closed\nmore', 'line 2: unterminated """ in system'),
        ('FROM x\nSYSTEM "never closed', 'line 2: unterminated " in system'),
        ("FROM x\nSYSTEM", "line 2: missing value for system"),
    ],
)
def test_bad_modelfiles_fail_with_the_line_number(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as err:
        parse_modelfile(text)
    assert str(err.value) == message


def test_deprecated_parameters_are_dropped_not_refused() -> None:
    mf = parse_modelfile("FROM x\nPARAMETER mirostat 1\nPARAMETER penalize_newline true")
    assert mf.parameters == {}


def test_local_paths_resolve_relative_to_the_modelfile_and_names_stay_names(tmp_path: Path) -> None:
    (tmp_path / "w.gguf").write_bytes(b"GGUF")
    (tmp_path / "lora.gguf").write_bytes(b"GGUF")
    local = resolve_sources(parse_modelfile("FROM ./w.gguf\nADAPTER lora.gguf"), tmp_path)
    assert local.model_file == tmp_path / "w.gguf"
    assert local.base is None
    assert local.adapter_files == (tmp_path / "lora.gguf",)

    named = resolve_sources(parse_modelfile("FROM smollm2:135m"), tmp_path)
    assert named.model_file is None
    assert named.base == ModelName.parse("smollm2:135m")


def test_a_missing_local_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelfileError, match="missing.gguf: no such file"):
        resolve_sources(parse_modelfile("FROM ./missing.gguf"), tmp_path)
    with pytest.raises(ModelfileError, match="adapter nope.gguf: no such file"):
        resolve_sources(parse_modelfile("FROM smollm2\nADAPTER nope.gguf"), tmp_path)


def _model(**changes: object) -> Model:
    info = GGUFInfo("llama", 1, "1", "Q4_1", 8192, 576, None, None, None, False, {})
    values: dict[str, object] = {
        "name": ModelName.parse("me/smol:1"), "digest": "0" * 64, "size": 1,
        "modified_at": datetime.now(UTC), "model_path": Path("/m/blobs/sha256-aa"),
        "model_digest": "sha256:" + "a" * 64, "adapters": (), "projectors": (),
        "template": "{{ .Prompt }}", "system": "Be brief.\nVery.", "license": ("MIT",),
        "parameters": {"temperature": 0.2, "stop": ["<a>", "<b>"], "num_ctx": 4096},
        "messages": (Message("user", "hi"),), "config": {}, "info": info,
    }
    values.update(changes)
    return Model(**values)  # type: ignore[arg-type]


def test_show_modelfile_round_trips_through_the_parser() -> None:
    model = _model()
    text = format_modelfile(model)
    assert text.startswith('# Modelfile generated by "ollama show"\n')
    assert "# FROM me/smol:1\n" in text
    parsed = parse_modelfile(text)
    assert parsed.from_ == "/m/blobs/sha256-aa"
    assert parsed.template == model.template
    assert parsed.system == model.system
    assert parsed.parameters == model.parameters
    assert parsed.license == model.license
    assert parsed.messages == model.messages
