"""Reloading the configuration: live keys applied, restart keys reported, invalid files refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from llmd.config import Config, load_config
from llmd.errors import ConfigError
from llmd.system.reload import LIVE_KEYS, RESTART_KEYS, Reloader, compare


def test_every_config_key_is_either_live_or_needs_a_restart() -> None:
    keys = set(Config.__dataclass_fields__) - {"source"}
    assert keys == LIVE_KEYS | RESTART_KEYS
    assert not LIVE_KEYS & RESTART_KEYS


async def test_a_changed_file_is_applied_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "llmd.yaml"
    path.write_text("max_queue: 512\n")
    applied: list[Config] = []
    reloader = Reloader(load_config(path, environ={}), path, [applied.append],
                        load=lambda p: load_config(p, environ={}))
    path.write_text("max_queue: 7\nkeep_alive: 1m\norigins: [http://example.com]\nhost: 0.0.0.0:9\n")
    with caplog.at_level(logging.INFO, logger="llmd.system.reload"):
        new = await reloader.reload()
    assert (new.max_queue, new.keep_alive, new.origins) == (7, 60.0, ("http://example.com",))
    assert new.host.port == 11434  # needs a restart: the running value stays in effect
    assert applied == [new] and reloader.config is new
    [done] = [r for r in caplog.records if r.getMessage() == "configuration reloaded"]
    assert done.CHANGED == "keep_alive,max_queue,origins"  # type: ignore[attr-defined]
    [warn] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warn.RESTART_NEEDED == "host"  # type: ignore[attr-defined]


async def test_an_invalid_file_changes_nothing_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "llmd.yaml"
    path.write_text("max_queue: 5\n")
    applied: list[Config] = []
    old = load_config(path, environ={})
    reloader = Reloader(old, path, [applied.append], load=lambda p: load_config(p, environ={}))
    path.write_text("max_queue: [\n")
    with pytest.raises(ConfigError, match=str(path)):
        await reloader.reload()
    path.write_text("max_queue: 5\nwhatever: 1\n")
    with pytest.raises(ConfigError, match="whatever: unknown key"):
        await reloader.reload()
    assert reloader.config is old and applied == []
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "configuration not reloaded; keeping the previous one"] * 2


def test_compare_ignores_where_values_came_from() -> None:
    change = compare(Config(source="defaults"), Config(source="defaults, OLLAMA_HOST"))
    assert change.applied == () and change.needs_restart == ()
