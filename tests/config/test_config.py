"""Config: compiled-in defaults, then YAML, then OLLAMA_* variables; one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llmd.config import (
    Config,
    format_duration,
    load_config,
    parse_go_duration,
    parse_host,
    parse_keep_alive,
)
from llmd.errors import ConfigError


def test_defaults_match_ollama(tmp_path: Path) -> None:
    config = load_config(None, environ={"HOME": str(tmp_path)})
    assert config.host.url == "http://127.0.0.1:11434"
    assert config.keep_alive == 300
    assert config.num_parallel == 0  # chosen from the memory budget; OLLAMA_NUM_PARALLEL wins
    assert config.max_queue == 512
    assert config.max_loaded_models == 3


def test_yaml_overrides_defaults_and_environment_overrides_yaml(tmp_path: Path) -> None:
    path = tmp_path / "llmd.yaml"
    path.write_text("max_queue: 7\nkeep_alive: 10m\nnum_parallel: 2\n")
    config = load_config(path, environ={"OLLAMA_NUM_PARALLEL": "4"})
    assert config.max_queue == 7
    assert config.keep_alive == 600
    assert config.num_parallel == 4
    assert "OLLAMA_NUM_PARALLEL" in config.source


def test_models_dir_follows_ollama_models_then_state_directory(tmp_path: Path, monkeypatch) -> None:
    config = load_config(None, environ={"OLLAMA_MODELS": str(tmp_path / "m")})
    assert config.models == tmp_path / "m"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert load_config(None, environ={}).models == tmp_path / "state" / "models"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("max_queue: many\n", "max_queue: must be an integer"),
        ("no_such_key: 1\n", "no_such_key: unknown key"),
        ("keep_alive: 300x\n", 'keep_alive: time: unknown unit "x"'),
        ("[1, 2\n", "line"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_an_invalid_file_names_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "llmd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(path) in str(err.value)
    assert problem in str(err.value)


def test_an_invalid_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="^OLLAMA_MAX_QUEUE: max_queue: must be an integer"):
        load_config(None, environ={"OLLAMA_MAX_QUEUE": "lots"})


def test_a_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml", environ={})


def test_ollama_booleans_count_unparseable_values_as_true() -> None:
    assert load_config(None, environ={"OLLAMA_NOPRUNE": "yes please"}).noprune is True
    assert load_config(None, environ={"OLLAMA_NOPRUNE": "false"}).noprune is False


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":1234", "http://:1234"),
        ("example.com:1234", "http://example.com:1234"),
        ("::1", "http://[::1]:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        ("https://1.2.3.4", "https://1.2.3.4:443"),
        ("https://example.com/ollama", "https://example.com:443/ollama"),
        ("ollama.com", "https://ollama.com:443"),
        ("1.2.3.4:99999", "http://1.2.3.4:11434"),
        ('  "1.2.3.4:5"  ', "http://1.2.3.4:5"),
    ],
)
def test_ollama_host_is_parsed_as_ollama_does(value: str, url: str) -> None:
    assert parse_host(value).url == url


def test_unspecified_addresses_connect_to_loopback() -> None:
    assert parse_host("0.0.0.0:9").connectable().url == "http://127.0.0.1:9"
    assert parse_host("[::]:9").connectable().url == "http://[::1]:9"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h30m", 5400), ("-1m", -60), ("0", 0), ("1.5s", 1.5), ("300ms", 0.3)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


def test_a_unitless_duration_string_is_refused_with_gos_message() -> None:
    with pytest.raises(ValueError, match='time: missing unit in duration "300"'):
        parse_keep_alive("300")


def test_keep_alive_numbers_are_seconds_and_negative_is_forever() -> None:
    assert parse_keep_alive(300) == 300
    assert parse_keep_alive(-1) == math.inf
    assert parse_keep_alive("-5m") == math.inf
    with pytest.raises(ValueError, match="Unsupported type"):
        parse_keep_alive([1])
    assert format_duration(300) == "5m0s"
    assert format_duration(math.inf) == "-1"


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Config().max_queue = 3  # type: ignore[misc]


def test_the_prompt_cache_kv_type_and_flash_attention_come_from_ollama_variables(
    tmp_path: Path,
) -> None:
    config = load_config(None, environ={"HOME": str(tmp_path)})
    assert (config.prompt_cache, config.kv_cache_type, config.flash_attention) == (None, "f16", None)
    config = load_config(None, environ={
        "OLLAMA_PROMPT_CACHE": "256MiB", "OLLAMA_KV_CACHE_TYPE": "q8_0",
        "OLLAMA_FLASH_ATTENTION": "1",
    })
    assert (config.prompt_cache, config.kv_cache_type, config.flash_attention) == (
        256 * 2**20, "q8_0", True)
    assert load_config(None, environ={"OLLAMA_PROMPT_CACHE": "0"}).prompt_cache == 0


def test_a_prompt_cache_above_the_memory_budget_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "llmd.yaml"
    path.write_text("max_memory: 1GiB\nprompt_cache: 2GiB\n")
    with pytest.raises(ConfigError, match=f"^{path}: prompt_cache: .*memory budget"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="^OLLAMA_PROMPT_CACHE: prompt_cache: "):
        load_config(None, environ={"OLLAMA_PROMPT_CACHE": "1000TiB"})


def test_a_kv_cache_type_must_be_one_llama_cpp_can_use_without_turning_flash_attention_off() -> None:
    with pytest.raises(ConfigError, match="^OLLAMA_KV_CACHE_TYPE: kv_cache_type: must be one of"):
        load_config(None, environ={"OLLAMA_KV_CACHE_TYPE": "q2_k"})
    with pytest.raises(ConfigError, match="kv_cache_type: q4_0 needs flash attention"):
        load_config(None, environ={"OLLAMA_KV_CACHE_TYPE": "q4_0", "OLLAMA_FLASH_ATTENTION": "0"})
