"""The ``llmd`` command: one-line errors for bad configuration, a clean stop, offline create."""

from __future__ import annotations


import socket
import subprocess
import sys
from pathlib import Path

import httpx

import llmd
from harness import client_env, live_server


def _llmd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmd", *args], capture_output=True, text=True,
                          env=env, cwd=cwd)


def test_version_prints_the_package_version() -> None:
    r = _llmd("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"llmd version is {llmd.__version__}"


def test_a_bad_config_value_exits_1_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "llmd.yaml"
    config.write_text("max_queue: lots\n")
    r = _llmd("serve", "--config", str(config), env=client_env("127.0.0.1:1"))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"llmd: {config}: max_queue: must be an integer, got 'lots'"]


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "llmd.yaml"
    config.write_text("")
    env = client_env("127.0.0.1:1", {"OLLAMA_KEEP_ALIVE": "300"})
    r = _llmd("serve", "--config", str(config), env=env)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("llmd: OLLAMA_KEEP_ALIVE: keep_alive: ")
    assert "missing unit in duration" in lines[0]


def test_a_busy_listen_address_exits_1_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "llmd.yaml"
    config.write_text("")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = client_env(f"127.0.0.1:{port}", {"OLLAMA_MODELS": str(tmp_path / "models")})
        r = _llmd("serve", "--config", str(config), env=env)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"llmd: OLLAMA_HOST: host: cannot listen on 127.0.0.1:{port}: address already in use"
    ]


def test_sigterm_stops_the_server_with_status_0(tmp_path: Path) -> None:
    with live_server(tmp_path) as server:
        assert httpx.get(server.url + "/").text == "Ollama is running"
        assert server.stop() == 0


def test_llmd_create_imports_a_modelfile_without_a_server(tmp_path: Path, gguf_path: Path) -> None:
    models = tmp_path / "models"
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {gguf_path}\nPARAMETER temperature 0.2\nSYSTEM hello\n")
    env = client_env("127.0.0.1:1", {"OLLAMA_MODELS": str(models)})
    config = tmp_path / "llmd.yaml"
    config.write_text("")
    r = _llmd("create", "offline:v1", "-f", str(modelfile), "--config", str(config), env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "success"
    with live_server(tmp_path, models=models) as server:
        shown = server.http.post("/api/show", json={"model": "offline:v1"}).json()
        assert shown["system"] == "hello"


def test_llmd_create_reports_a_modelfile_error_in_one_line(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM x.gguf\nPARAMETER bogus 1\n")
    config = tmp_path / "llmd.yaml"
    config.write_text("")
    env = client_env("127.0.0.1:1", {"OLLAMA_MODELS": str(tmp_path / "models")})
    r = _llmd("create", "bad", "-f", str(modelfile), "--config", str(config), env=env)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1
    assert "line 2" in lines[0] and "bogus" in lines[0]

