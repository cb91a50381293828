"""Creates that must fail cleanly, creates that race, and a daemon killed in the middle."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from harness import LiveServer, file_digest, live_server, upload_blob


def _upload_bytes(server: LiveServer, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = server.http.post(f"/api/blobs/{digest}", content=data)
    assert r.status_code in (200, 201)
    return digest


def _create(server: LiveServer, name: str, files: dict[str, str]) -> httpx.Response:
    return server.http.post("/api/create",
                      json={"model": name, "files": files, "stream": False})


def _names(server: LiveServer) -> set[str]:
    return {m["name"] for m in server.http.get("/api/tags").json()["models"]}


def test_a_blob_with_the_wrong_digest_is_refused_and_not_kept(server: LiveServer) -> None:
    digest = "sha256:" + hashlib.sha256(b"expected").hexdigest()
    before = set((server.models / "blobs").iterdir())
    r = server.http.post(f"/api/blobs/{digest}", content=b"something else entirely")
    assert r.status_code == 400
    assert r.json()["error"].startswith(f'digest mismatch, expected "{digest}"')
    assert server.http.head(f"/api/blobs/{digest}").status_code == 404
    assert set((server.models / "blobs").iterdir()) == before


def test_a_truncated_gguf_is_400_with_a_clear_message(server: LiveServer, gguf_path: Path) -> None:
    with gguf_path.open("rb") as f:
        head = f.read(1_000_000)
    digest = _upload_bytes(server, head)
    r = _create(server, "truncated", {"model.gguf": digest})
    assert r.status_code == 400
    assert "model.gguf" in r.json()["error"] and "truncated" in r.json()["error"]
    assert "truncated:latest" not in _names(server)


def test_random_bytes_are_400_not_a_gguf(server: LiveServer) -> None:
    digest = _upload_bytes(server, os.urandom(4096))
    r = _create(server, "noise", {"noise.gguf": digest})
    assert r.status_code == 400
    assert "noise.gguf" in r.json()["error"] and "GGUF" in r.json()["error"]
    assert "noise:latest" not in _names(server)


def test_a_streamed_create_of_a_bad_file_ends_with_an_error_line(server: LiveServer) -> None:
    digest = _upload_bytes(server, b"GGUF" + os.urandom(64))
    body = {"model": "noise-stream", "files": {"x.gguf": digest}}
    with server.http.stream("POST", "/api/create", json=body) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
        status = r.status_code
    # Whether the error comes before or after the first status line, the client is told.
    if status == 200:
        assert "error" in lines[-1]
    else:
        assert status == 400
    assert "noise-stream:latest" not in _names(server)


def test_a_create_from_a_missing_blob_is_refused(server: LiveServer) -> None:
    r = _create(server, "ghost", {"ghost.gguf": "sha256:" + "0" * 64})
    assert r.status_code == 404
    assert r.json()["error"] == f'blob "sha256:{"0" * 64}" not found'


def test_two_concurrent_creates_sharing_a_blob_both_succeed(server: LiveServer, gguf_path: Path) -> None:
    digest = upload_blob(server.url, gguf_path)
    results: dict[str, httpx.Response] = {}

    def create(name: str) -> None:
        results[name] = _create(server, name, {gguf_path.name: digest})

    threads = [threading.Thread(target=create, args=(name,)) for name in ("twin-a", "twin-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {name: r.status_code for name, r in results.items()} == {"twin-a": 200, "twin-b": 200}
    assert {"twin-a:latest", "twin-b:latest"} <= _names(server)

    assert server.http.request("DELETE", "/api/delete", json={"model": "twin-a"}).status_code == 200
    # the shared weights stay for the other model
    assert server.http.head(f"/api/blobs/{digest}").status_code == 200
    assert server.http.post("/api/show", json={"model": "twin-b"}).status_code == 200


@pytest.fixture
def killable(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path) as live:
        yield live


def _assert_store_is_clean(models: Path, workdir: Path) -> set[str]:
    """A fresh daemon on the same store lists it, and every listed model resolves."""
    for manifest in (models / "manifests").rglob("*") if (models / "manifests").exists() else ():
        if manifest.is_file():
            json.loads(manifest.read_bytes())  # no half-written manifest
    with live_server(workdir, models=models) as again:
        r = again.http.get("/api/tags")
        assert r.status_code == 200
        names = {m["name"] for m in r.json()["models"]}
        for name in names:
            assert again.http.post("/api/show", json={"model": name}).status_code == 200
        return names


def test_killing_the_daemon_during_a_create_leaves_no_half_model(
    killable: LiveServer, gguf_path: Path, tmp_path: Path
) -> None:
    digest = upload_blob(killable.url, gguf_path)
    body = {"model": "interrupted", "files": {gguf_path.name: digest}}
    with killable.http.stream("POST", "/api/create", json=body) as r:
        for line in r.iter_lines():
            if line:  # the create is under way: kill it before it can finish cleanly
                killable.kill()
                break
    names = _assert_store_is_clean(killable.models, tmp_path / "after")
    assert names <= {"interrupted:latest"}


def test_killing_the_daemon_during_a_blob_upload_keeps_no_partial_blob(
    killable: LiveServer, gguf_path: Path, tmp_path: Path
) -> None:
    digest = file_digest(gguf_path)

    def chunks() -> Iterator[bytes]:
        with gguf_path.open("rb") as f:
            yield f.read(1 << 20)
            yield f.read(1 << 20)
            killable.kill()  # the daemon dies with the blob half received
            yield f.read(1 << 20)

    with pytest.raises(httpx.TransportError):
        killable.http.post(f"/api/blobs/{digest}", content=chunks())
    assert not (killable.models / "blobs" / digest.replace(":", "-")).exists()
    with live_server(tmp_path / "after", models=killable.models) as again:
        assert again.http.head(f"/api/blobs/{digest}").status_code == 404


def test_a_template_that_does_not_parse_is_refused_by_the_daemon(server: LiveServer) -> None:
    # The store's check is wired in by `llmd serve` itself (it used to be left out, so any
    # TEMPLATE was stored and failed only at the first chat).
    response = httpx.post(f"{server.url}/api/create", json={
        "model": "badtemplate:1", "from": "smollm2:135m", "template": "{{ .Prompt ", "stream": False,
    }, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"].startswith("template error:")
    assert httpx.post(f"{server.url}/api/show", json={"model": "badtemplate:1"}).status_code == 404
