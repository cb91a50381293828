"""The shipped unit files, sysusers entry and default configuration."""

from __future__ import annotations

import configparser
import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from llmd.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "units"


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_service_sandbox_exposure_is_at_most_2_5() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNITS / "llmd.service")],
        capture_output=True, text=True, check=False,
    )
    found = re.search(r"Overall exposure level for llmd\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.5


def test_socket_listens_on_loopback_11434_with_the_http_fd_name() -> None:
    sock = _unit("llmd.socket")
    assert sock["Socket"]["ListenStream"] == "127.0.0.1:11434"
    assert sock["Socket"]["FileDescriptorName"] == "http"
    assert sock["Install"]["WantedBy"] == "sockets.target"


def test_service_is_notify_without_install_and_keeps_gpus_reachable() -> None:
    service = _unit("llmd.service")
    assert not service.has_section("Install")
    s = service["Service"]
    assert (s["Type"], s["User"], s["StateDirectory"], s["Restart"]) == (
        "notify", "ollama", "llmd", "on-failure")
    assert s["BusName"] == "org.llmd.Manager1"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "WatchdogSec" in s
    assert "PrivateDevices" not in s
    text = (UNITS / "llmd.service").read_text()
    for device in ("char-nvidiactl", "char-nvidia-uvm", "char-drm", "char-kfd"):
        assert f"DeviceAllow={device} rw" in text
    assert "AF_UNIX" in s["RestrictAddressFamilies"]


def test_sysusers_creates_the_ollama_system_user() -> None:
    lines = [line for line in (UNITS / "llmd.sysusers").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert [line.split()[:3] for line in lines] == [["u", "ollama", "-"], ["g", "render", "-"]]


def test_shipped_config_loads_as_all_defaults_and_documents_every_key(tmp_path: Path) -> None:
    path = ROOT / "conf" / "llmd.yaml"
    loaded = load_config(path, environ={})
    defaults = Config()
    for field in dataclasses.fields(Config):
        if field.name != "source":
            assert getattr(loaded, field.name) == getattr(defaults, field.name), field.name
    text = path.read_text()
    for field in dataclasses.fields(Config):
        if field.name == "declared_models":  # the list form of models:, a block of its own
            assert re.search(r"^#models:\n#  - name: ", text, re.MULTILINE)
        elif field.name != "source":
            assert re.search(rf"^#{field.name}: ", text, re.MULTILINE), field.name
    # uncommented, every documented value must still load (and equal the default)
    uncommented = re.sub(r"^#(\w+: )", r"\1", text, flags=re.MULTILINE)
    tmp = tmp_path / "llmd.yaml"
    tmp.write_text(uncommented)
    active = load_config(tmp, environ={})
    for key in ("keep_alive", "max_loaded_models", "max_queue", "idle_exit", "drain_timeout",
                "load_timeout", "context_length", "debug", "noprune", "host"):
        assert getattr(active, key) == getattr(defaults, key), key
