"""Wire conventions of the native API, driven in-process through Starlette's TestClient."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

import llmd
from llmd.api.app import AppState, build_app
from llmd.config import Config
from llmd.store import Store


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    state = AppState(config=Config(models=tmp_path), store=Store(tmp_path))
    app = build_app(state, route_modules=("llmd.api.models",))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_root_says_ollama_is_running(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.text == "Ollama is running"
    assert client.head("/").status_code == 200


def test_version_is_the_package_version_as_compact_json(client: TestClient) -> None:
    r = client.get("/api/version")
    assert r.status_code == 200
    assert r.content == b'{"version":"' + llmd.__version__.encode() + b'"}'
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert client.head("/api/version").status_code == 200


def test_tags_of_an_empty_store_is_an_empty_list(client: TestClient) -> None:
    assert client.get("/api/tags").json() == {"models": []}
    assert client.head("/api/tags").status_code == 200


def test_empty_body_is_400_missing_request_body(client: TestClient) -> None:
    r = client.post("/api/show", content=b"")
    assert r.status_code == 400
    assert r.json() == {"error": "missing request body"}


def test_malformed_json_is_400_with_an_error_string_never_422(client: TestClient) -> None:
    r = client.post("/api/show", content=b"{not json")
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str) and r.json()["error"]


def test_a_json_array_body_is_400(client: TestClient) -> None:
    r = client.post("/api/create", content=b"[1, 2]")
    assert r.status_code == 400
    assert "cannot unmarshal array" in r.json()["error"]


def test_a_wrongly_typed_field_is_400_naming_the_field(client: TestClient) -> None:
    r = client.post("/api/show", json={"model": 5})
    assert r.status_code == 400
    assert "ShowRequest.model" in r.json()["error"]


def test_unknown_route_is_plain_text_404(client: TestClient) -> None:
    r = client.get("/api/nope")
    assert r.status_code == 404
    assert r.text == "404 page not found"
    assert r.headers["content-type"].startswith("text/plain")


def test_wrong_method_is_405(client: TestClient) -> None:
    r = client.get("/api/show")
    assert r.status_code == 405
    assert r.text == "405 method not allowed"


def test_show_without_a_model_is_400_model_is_required(client: TestClient) -> None:
    r = client.post("/api/show", json={"verbose": True})
    assert r.status_code == 400
    assert r.json() == {"error": "model is required"}


def test_show_of_an_unknown_model_is_404_with_the_normalised_name(client: TestClient) -> None:
    r = client.post("/api/show", json={"model": "nope"})
    assert r.status_code == 404
    assert r.json() == {"error": "model 'nope:latest' not found"}


def test_keys_match_case_insensitively_and_unknown_fields_are_ignored(client: TestClient) -> None:
    r = client.post("/api/show", json={"MODEL": "nope", "whatever": [1, 2, 3]})
    assert r.status_code == 404
    assert r.json() == {"error": "model 'nope:latest' not found"}


def test_an_invalid_model_name_is_400(client: TestClient) -> None:
    r = client.post("/api/show", json={"model": "bad name!"})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid model name"}


def test_create_without_from_or_files_is_400(client: TestClient) -> None:
    r = client.post("/api/create", json={"model": "x"})
    assert r.status_code == 400
    assert r.json() == {"error": "neither 'from' or 'files' was specified"}


def test_create_with_an_absolute_file_path_is_400(client: TestClient) -> None:
    r = client.post("/api/create", json={"model": "x", "files": {"/etc/passwd": "sha256:" + "a" * 64}})
    assert r.status_code == 400
    assert r.json() == {"error": "file path must be relative"}


def test_create_with_a_bad_digest_is_400_invalid_digest_format(client: TestClient) -> None:
    r = client.post("/api/create", json={"model": "x", "files": {"m.gguf": "sha256:zz"}})
    assert r.status_code == 400
    assert r.json() == {"error": "invalid digest format"}


def test_create_with_an_unknown_parameter_is_400_naming_it(client: TestClient) -> None:
    body = {"model": "x", "files": {"m.gguf": "sha256:" + "a" * 64}, "parameters": {"bogus": 1}}
    r = client.post("/api/create", json=body)
    assert r.status_code == 400
    assert "bogus" in r.json()["error"]


def test_copy_of_an_unknown_model_is_404(client: TestClient) -> None:
    r = client.post("/api/copy", json={"source": "nope", "destination": "other"})
    assert r.status_code == 404
    assert r.json() == {"error": 'model "nope:latest" not found'}


def test_copy_to_an_invalid_name_is_400(client: TestClient) -> None:
    r = client.post("/api/copy", json={"source": "nope", "destination": "a/b/c/d/e"})
    assert r.status_code == 400
    assert r.json() == {"error": 'destination "a/b/c/d/e" is invalid'}


def test_delete_of_an_unknown_model_is_404(client: TestClient) -> None:
    r = client.request("DELETE", "/api/delete", json={"model": "nope"})
    assert r.status_code == 404
    assert r.json() == {"error": "model 'nope' not found"}


def test_head_of_an_unknown_blob_is_404(client: TestClient) -> None:
    assert client.head("/api/blobs/sha256:" + "0" * 64).status_code == 404


def test_a_malformed_digest_is_400_invalid_digest_format(client: TestClient) -> None:
    for method in ("HEAD", "POST"):
        r = client.request(method, "/api/blobs/sha256:1234")
        assert r.status_code == 400
    assert client.post("/api/blobs/md5-" + "0" * 64).json() == {"error": "invalid digest format"}


def test_blob_upload_creates_then_finds_the_blob(client: TestClient) -> None:
    import hashlib

    data = b"hello blob\n" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201
    assert client.head(f"/api/blobs/{digest}").status_code == 200
    assert client.post(f"/api/blobs/{digest}", content=data).status_code == 200


def test_blob_with_the_wrong_digest_is_400_and_nothing_is_kept(client: TestClient, tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    r = client.post(f"/api/blobs/{digest}", content=b"not those bytes")
    assert r.status_code == 400
    assert r.json()["error"].startswith("digest mismatch")
    assert client.head(f"/api/blobs/{digest}").status_code == 404
    blobs = tmp_path / "blobs"
    assert not blobs.exists() or list(blobs.iterdir()) == []


@pytest.mark.parametrize(("body", "kind"), [
    (b"[1]", "array"), (b'"x"', "string"), (b"true", "bool"), (b"null", "null"), (b"3", "number"),
])
def test_a_body_that_is_not_an_object_is_refused_in_gos_words(
    client: TestClient, body: bytes, kind: str
) -> None:
    r = client.post("/api/show", content=body)
    assert r.status_code == 400
    assert r.json() == {"error": f"json: cannot unmarshal {kind} into Go value of type object"}
