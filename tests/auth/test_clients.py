"""The real ollama and openai clients against a live llmd with ``auth: required``.

Keys are made offline with ``llmd key add`` (as a provisioning script would), also while the
server runs: a change counts from the next request, without a restart.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from harness import CLIENT_TIMEOUT, LiveServer, client_env, live_server, run_llmctl

MODEL = "smollm2:135m"
SHORT = {"num_predict": 4, "temperature": 0}


@dataclass
class Keyed:
    server: LiveServer
    config: Path
    env: dict[str, str]
    ide: str  # scope inference
    ops: str  # scope models

    def llmd_key(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmd", "key", *args, "--config", str(self.config)],
            env=self.env, capture_output=True, text=True, timeout=60,
        )

    def add(self, name: str, *options: str) -> str:
        out = self.llmd_key("add", name, *options)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[Keyed]:
    work = tmp_path_factory.mktemp("auth-server")
    config = work / "llmd.yaml"
    config.write_text("auth: required\n")
    env = client_env("127.0.0.1:1", {"OLLAMA_MODELS": str(work / "models")})
    modelfile = work / "Modelfile"
    modelfile.write_text(f"FROM {gguf_path}\n")
    created = subprocess.run(
        [sys.executable, "-m", "llmd", "create", MODEL, "-f", str(modelfile), "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert created.returncode == 0, created.stderr
    with live_server(work, models=work / "models", args=["--config", str(config)]) as server:
        keyed = Keyed(server, config, env, "", "")
        keyed.ide = keyed.add("ide")
        keyed.ops = keyed.add("ops", "--scope", "models")
        yield keyed


def test_the_ollama_client_with_a_good_key_chats(keyed: Keyed) -> None:
    client = ollama.Client(host=keyed.server.url, headers=bearer(keyed.ide), timeout=CLIENT_TIMEOUT)
    reply = client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], options=SHORT)
    assert reply.message.content
    assert MODEL in [m.model for m in client.list().models]


def test_the_openai_client_with_a_good_api_key_chats(keyed: Keyed) -> None:
    with openai.OpenAI(base_url=f"{keyed.server.url}/v1", api_key=keyed.ide,
                       timeout=CLIENT_TIMEOUT, max_retries=0) as client:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        assert reply.choices[0].message.content is not None
        assert [m.id for m in client.models.list()] == [MODEL]


def test_without_a_key_or_with_a_wrong_one_clients_get_401(keyed: Keyed) -> None:
    for client in (ollama.Client(host=keyed.server.url),
                   ollama.Client(host=keyed.server.url, headers=bearer(keyed.ide[:-2]))):
        with pytest.raises(ollama.ResponseError) as refused:
            client.list()
        assert (refused.value.status_code, refused.value.error) == (401, "unauthorized")
    with openai.OpenAI(base_url=f"{keyed.server.url}/v1", api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    raw = httpx.get(f"{keyed.server.url}/api/tags")
    assert raw.headers["www-authenticate"] == "Bearer"


def test_llmctl_sends_ollama_api_key_as_the_ollama_client_does(keyed: Keyed) -> None:
    keyed_env = {**keyed.server.env, "OLLAMA_API_KEY": keyed.ide}
    listed = run_llmctl("list", env=keyed_env)
    assert listed.returncode == 0 and MODEL in listed.stdout, listed.stderr
    refused = run_llmctl("list", env=keyed.server.env)
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: unauthorized: this llmd wants an API key; set OLLAMA_API_KEY")


def test_a_revoked_key_is_refused_from_the_next_request_without_a_restart(keyed: Keyed) -> None:
    secret = keyed.add("temp")  # the server is running: it was added behind its back
    client = ollama.Client(host=keyed.server.url, headers=bearer(secret))
    assert client.ps() is not None
    removed = keyed.llmd_key("rm", "temp")
    assert removed.returncode == 0, removed.stderr
    with pytest.raises(ollama.ResponseError) as refused:
        client.ps()
    assert refused.value.status_code == 401


def test_an_inference_key_gets_403_on_model_changes_and_a_models_key_does_not(keyed: Keyed) -> None:
    ide = ollama.Client(host=keyed.server.url, headers=bearer(keyed.ide))
    for change in (lambda: ide.copy(MODEL, "copy:1"), lambda: ide.delete(MODEL),
                   lambda: ide.pull("127.0.0.1:1/library/none:1", insecure=True)):
        with pytest.raises(ollama.ResponseError) as refused:
            change()
        assert refused.value.status_code == 403
        assert refused.value.error == "key 'ide' lacks the 'models' scope"
    ops = ollama.Client(host=keyed.server.url, headers=bearer(keyed.ops))
    ops.copy(MODEL, "copy:1")
    ops.delete("copy:1")
    assert ops.show(MODEL).modelfile  # models includes inference


def test_a_key_at_max_concurrent_gets_429_with_retry_after(keyed: Keyed) -> None:
    secret = keyed.add("single", "--scope", "models", "--max-concurrent", "1")
    sending, finish = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:  # an upload held open: its request stays in flight
        yield b"x"
        sending.set()
        finish.wait(CLIENT_TIMEOUT)
        yield b"y"

    def upload() -> int:
        return httpx.post(f"{keyed.server.url}/api/blobs/sha256:{'0' * 64}", content=body(),
                          headers=bearer(secret), timeout=CLIENT_TIMEOUT).status_code

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(upload)
        assert sending.wait(CLIENT_TIMEOUT)
        try:
            with openai.OpenAI(base_url=f"{keyed.server.url}/v1", api_key=secret,
                               max_retries=0) as client:
                with pytest.raises(openai.RateLimitError) as busy:
                    client.models.list()
            assert busy.value.response.headers["retry-after"] == "1"
        finally:
            finish.set()
        assert first.result() == 400  # through to the route: the bytes do not match the digest
    assert httpx.get(f"{keyed.server.url}/api/tags", headers=bearer(secret)).status_code == 200


def test_records_name_the_key_never_hold_it_and_refusals_are_notices(keyed: Keyed) -> None:
    httpx.get(f"{keyed.server.url}/api/version", headers=bearer(keyed.ide))
    httpx.get(f"{keyed.server.url}/api/version", headers=bearer("llmd_not-a-key"))
    log = keyed.server.stderr()
    records = [line for line in log.splitlines() if "llmd.request: request" in line]
    assert any("ENDPOINT=\"GET /api/version\" STATUS=200" in r and "KEY_NAME=ide" in r for r in records)
    assert any("NOTICE llmd.api.auth: request refused CLIENT=127.0.0.1" in line
               for line in log.splitlines())
    for secret in (keyed.ide, keyed.ops):
        assert secret not in log
