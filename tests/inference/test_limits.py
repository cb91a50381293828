"""Limits with clear answers: bodies over max_request_bytes are 413 unread, values beyond a cap
are 400 naming the field, blob uploads are bounded by free disk instead, and one client's bad
request never hurts another's."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import LiveServer, file_digest, live_server
from inference.conftest import MODEL

MIB = 1024 * 1024


def raw_request(server: LiveServer, head: str, body: Iterator[bytes] = iter(())) -> tuple[int, dict[str, object]]:
    """Send a request by hand (httpx would send the whole body before reading the answer)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            for part in body:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head_text, _, rest = data.partition(b"\r\n\r\n")
    status = int(head_text.split()[1])
    return status, json.loads(rest[: _length(data)])


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_a_declared_body_over_the_default_limit_is_413_before_it_is_sent(server: LiveServer) -> None:
    # 300 MB announced and never sent: the answer comes at once, so nothing was read or held
    status, body = raw_request(server, (
        "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {300 * 1000 * 1000}\r\n\r\n"))
    assert status == 413
    assert body == {"error": f"request body too large (300000000 bytes, limit {32 * MIB})"}


def test_the_openai_routes_answer_413_in_their_own_shape(server: LiveServer) -> None:
    status, body = raw_request(server, (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {64 * MIB}\r\n\r\n"))
    assert status == 413
    assert body["error"]["message"] == f"request body too large ({64 * MIB} bytes, limit {32 * MIB})"  # type: ignore[index]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A daemon with a 1 MiB body limit, and min_free_disk 0 so that uploads only need space."""
    work = tmp_path_factory.mktemp("small-limits")
    config = work / "llmd.yaml"
    config.write_text("max_request_bytes: 1MiB\nmin_free_disk: 0\n")
    with live_server(work, args=["--config", str(config)]) as live:
        yield live


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(small: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        piece = b'{"model": "x", "prompt": "' + b"a" * 65536
        for _ in range(64):  # 4 MiB if it were all read
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            piece = b"a" * 65536

    status, body = raw_request(small, (
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"), chunks())
    assert status == 413
    message = str(body["error"])
    assert message.startswith("request body too large (more than ") and message.endswith(f"bytes, limit {MIB})")


def test_blob_uploads_are_exempt_from_the_body_limit(small: LiveServer) -> None:
    data = b"\x00blob" * (MIB // 2)  # 2.5 MiB
    digest = "sha256:" + __import__("hashlib").sha256(data).hexdigest()
    response = httpx.post(f"{small.url}/api/blobs/{digest}", content=data, timeout=60)
    assert response.status_code == 201
    assert httpx.head(f"{small.url}/api/blobs/{digest}").status_code == 200


def test_a_blob_that_would_fill_the_disk_is_507_and_nothing_is_kept(
    tmp_path: Path, gguf_path: Path
) -> None:
    config = tmp_path / "llmd.yaml"
    config.write_text("min_free_disk: 1000TiB\n")  # more than any disk here has
    with live_server(tmp_path, args=["--config", str(config)]) as live:
        digest = file_digest(gguf_path)
        response = httpx.post(f"{live.url}/api/blobs/{digest}", content=gguf_path.read_bytes(), timeout=60)
        assert response.status_code == 507
        assert response.json()["error"].startswith("not enough disk space for the blob")
        assert list((live.models / "blobs").iterdir()) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"options": {"num_ctx": 100_000_000}}, "num_ctx must be at most 1048576"),
        ({"options": {"num_predict": 100_000_000}}, "num_predict must be at most 1048576"),
        ({"keep_alive": 1e13}, "keep_alive must be at most"),
        ({"keep_alive": "100000000h"}, "keep_alive must be at most"),
        ({"options": {"stop": ["x"] * 65}}, "stop must hold at most 64 strings"),
        ({"options": {"stop": ["x" * 1025]}}, "each stop string must be at most 1024 characters"),
    ],
)
def test_a_value_beyond_its_cap_is_400_naming_the_field(
    server: LiveServer, body: dict[str, object], field: str
) -> None:
    response = server.http.post("/api/generate", json={"model": MODEL, "prompt": "hi", **body})
    assert response.status_code == 400
    assert response.json()["error"].startswith(field)


def test_too_many_messages_is_400(server: LiveServer) -> None:
    messages = [{"role": "user", "content": "hi"}] * 4097
    response = server.http.post("/api/chat", json={"model": MODEL, "messages": messages})
    assert response.status_code == 400
    assert response.json() == {"error": "the number of messages must be at most 4096, got 4097"}


def test_openai_max_tokens_beyond_the_cap_names_max_tokens(server: LiveServer) -> None:
    response = server.http.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**8})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "max_tokens must be at most 1048576, got 100000000"


def test_a_huge_keep_alive_is_refused_and_the_daemon_keeps_serving(server: LiveServer) -> None:
    # it used to be an OverflowError (500) in the scheduler, which could take the task that
    # sends STATUS= and drives idle exit down with it
    assert server.http.post("/api/generate", json={"model": MODEL, "keep_alive": 1e13}).status_code == 400
    assert server.http.get("/api/ps").status_code == 200
    again = server.http.post("/api/generate", json={
        "model": MODEL, "prompt": "Say hi.", "stream": False, "options": {"num_predict": 2}})
    assert again.status_code == 200


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_has_no_nan_or_infinity(server: LiveServer, literal: str) -> None:
    response = server.http.post("/api/generate", content=(
        '{"model": "%s", "prompt": "hi", "options": {"temperature": %s}}' % (MODEL, literal)).encode())
    assert response.status_code == 400
    assert "invalid character" in response.json()["error"]


def test_deeply_nested_json_is_400_not_a_crash(server: LiveServer) -> None:
    response = server.http.post("/api/generate", content=b"[" * 200_000 + b"]" * 200_000)
    assert response.status_code == 400


def test_a_token_id_outside_the_vocabulary_is_400_and_harms_no_other_request(server: LiveServer) -> None:
    # with one runner serving both: a bad id used to fail the whole batch, and every request in it
    story = {"model": MODEL, "prompt": "Tell me a long story about the sea.",
             "options": {"num_predict": 60, "temperature": 0}}
    lines: list[dict[str, object]] = []
    first_line = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=server.url, timeout=300) as other:
            with other.stream("POST", "/api/generate", json=story) as response:
                for line in response.iter_lines():
                    lines.append(json.loads(line))
                    first_line.set()

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert first_line.wait(300)
        for bad in ([99999999], [-1]):
            response = server.http.post("/api/generate", json={
                "model": MODEL, "prompt": "hi", "context": bad, "stream": False})
            assert response.status_code == 400
            assert response.json()["error"].startswith(f"invalid token id {bad[0]} in context")
    finally:
        worker.join(300)
    assert lines[-1].get("done") is True and "error" not in lines[-1]
    alone = server.http.post("/api/generate", json={**story, "stream": False}).json()
    assert "".join(str(x.get("response", "")) for x in lines) == alone["response"]


def test_the_responses_and_messages_apis_name_their_own_field_beyond_the_cap(
    server: LiveServer,
) -> None:
    user = [{"role": "user", "content": "hi"}]
    answer = server.http.post("/v1/responses", json={
        "model": MODEL, "input": "hi", "max_output_tokens": 10**8})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "max_output_tokens must be at most 1048576, got 100000000")
    answer = server.http.post("/v1/messages", json={
        "model": MODEL, "messages": user, "max_tokens": 10**8})
    assert answer.status_code == 400
    assert answer.json() == {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "max_tokens must be at most 1048576, got 100000000"}}
    many = [{"role": "user", "content": "hi"}] * 5000
    answer = server.http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": many})
    assert answer.status_code == 400 and "messages" in answer.json()["error"]["message"]
