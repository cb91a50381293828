"""GET /v1/models/{name}: any made-up name, whatever characters it holds, is OpenAI's JSON 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from llmd.api.app import AppState, build_app
from llmd.config import Config
from llmd.store import Store


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = build_app(AppState(config=Config(models=tmp_path), store=Store(tmp_path)),
                    route_modules=("llmd.api.openai",))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("name", ["missing:1b", "team/missing:1b", "a%0Ab", "%0A%0A%C2%96rC"])
def test_an_unknown_model_is_a_json_404_even_with_a_newline_in_its_name(
    client: TestClient, name: str
) -> None:
    r = client.get(f"/v1/models/{name}")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["type"] == "not_found_error"
