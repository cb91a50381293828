"""What SmolLM2 cannot show, on tiny GGUFs the tests write with the gguf package (tests/tinymodel.py):
a Llama-style BOS, GGUF pooling types, LoRA adapters, projectors, a missing chat template and
``create --quantize``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import gguf
import httpx
import pytest
import tinymodel
from harness import LiveServer, live_server, run_llmctl, upload_blob

pytestmark = pytest.mark.model

GREEDY = {"temperature": 0, "seed": 1, "num_predict": 6}
BOS_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}\n{% endfor %}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny")
    return {
        "plain": tinymodel.write_llama(d / "tiny.gguf"),
        "bos": tinymodel.write_llama(d / "tiny-bos.gguf", chat_template=BOS_TEMPLATE),
        "cls": tinymodel.write_llama(d / "tiny-cls.gguf", pooling=gguf.PoolingType.CLS),
        "lora": tinymodel.write_lora(d / "lora.gguf"),
        "mmproj": tinymodel.write_projector(d / "mmproj.gguf"),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("tiny-server")) as live:
        yield live


def create(server: LiveServer, name: str, **body: object) -> httpx.Response:
    return server.http.post("/api/create", json={"model": name, "stream": False, **body})


def create_from(server: LiveServer, name: str, path: Path, **body: object) -> list[dict[str, object]]:
    files = {path.name: upload_blob(server.url, path)}
    response = server.http.post("/api/create", json={"model": name, "files": files, **body})
    assert response.status_code == 200, response.text
    lines = [httpx.Response(200, content=line).json() for line in response.content.splitlines()]
    assert lines[-1] == {"status": "success"}, lines
    return lines


def generate(server: LiveServer, model: str, prompt: str = "hi") -> dict[str, object]:
    response = server.http.post("/api/generate", json={
        "model": model, "prompt": prompt, "stream": False, "options": GREEDY})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_template_that_writes_bos_token_gets_one_bos(server: LiveServer, files: dict[str, Path]) -> None:
    create_from(server, "tiny-bos", files["bos"])
    context = generate(server, "tiny-bos")["context"]
    assert isinstance(context, list)
    # the rendered prompt is "<s>hi\n": one BOS, then its text (SentencePiece adds a space first)
    assert context[0] == tinymodel.BOS and context[1] != tinymodel.BOS


def test_an_embedding_model_pools_as_its_gguf_says(server: LiveServer, files: dict[str, Path]) -> None:
    create_from(server, "tiny-cls", files["cls"])
    show = server.http.post("/api/show", json={"model": "tiny-cls"}).json()
    assert show["capabilities"] == ["embedding"] and "warnings" not in show
    vectors = server.http.post("/api/embed", json={
        "model": "tiny-cls", "input": ["hello world", "goodbye"]}).json()["embeddings"]
    # CLS pooling takes the first token, BOS here, which a causal model sees alone: every input
    # gets the same vector. Mean pooling, forced before, averaged the inputs' own tokens.
    assert len(vectors) == 2 and vectors[0] == pytest.approx(vectors[1])
    assert math.isclose(math.sqrt(sum(v * v for v in vectors[0])), 1.0, rel_tol=1e-4)


def test_a_lora_adapter_is_applied(server: LiveServer, files: dict[str, Path]) -> None:
    create_from(server, "tiny", files["plain"])
    adapters = {files["lora"].name: upload_blob(server.url, files["lora"])}
    assert create(server, "tiny-lora", **{"from": "tiny", "adapters": adapters}).status_code == 200
    plain = generate(server, "tiny")["response"]
    adapted = generate(server, "tiny-lora")["response"]
    # the adapter lifts one token above every other; the model alone never says it
    assert adapted == "A" * GREEDY["num_predict"]
    assert isinstance(plain, str) and "A" not in plain
    # the two share their weights, yet each answers as itself when asked in turn
    assert generate(server, "tiny")["response"] == plain


def test_a_projector_does_not_make_a_model_see(server: LiveServer, files: dict[str, Path]) -> None:
    model_files = {p.name: upload_blob(server.url, p) for p in (files["plain"], files["mmproj"])}
    assert create(server, "tiny-mmproj", files=model_files).status_code == 200
    show = server.http.post("/api/show", json={"model": "tiny-mmproj"}).json()
    assert "vision" not in show["capabilities"]
    response = server.http.post("/api/chat", json={"model": "tiny-mmproj", "messages": [
        {"role": "user", "content": "what is this?", "images": ["aGVsbG8="]}]})
    assert response.status_code == 400
    assert "image input is not supported" in response.json()["error"]
    plain = server.http.post("/api/generate", json={"model": "tiny", "prompt": "x",
                                                    "images": ["aGVsbG8="]})
    assert plain.status_code == 400
    assert plain.json()["error"] == "this model is missing data required for image input"


def test_create_and_show_flag_a_model_without_any_chat_template(
    server: LiveServer, files: dict[str, Path]
) -> None:
    lines = create_from(server, "tiny-bare", files["plain"])
    warnings = [line["status"] for line in lines if "no chat template" in str(line["status"])]
    assert len(warnings) == 1 and "TEMPLATE" in str(warnings[0])
    show = server.http.post("/api/show", json={"model": "tiny-bare"}).json()
    assert show["warnings"] == warnings
    # a TEMPLATE fixes it, and a GGUF chat template never needed one
    assert create(server, "tiny-templated", **{"from": "tiny-bare", "template": "{{ .Prompt }}"}).status_code == 200
    for name in ("tiny-templated", "tiny-bos"):
        assert "warnings" not in server.http.post("/api/show", json={"model": name}).json()


@pytest.mark.parametrize("kind", ["q4_K_M", "q4_K_S", "q8_0"])
def test_create_quantizes_an_f16_model(server: LiveServer, files: dict[str, Path], kind: str) -> None:
    create_from(server, "tiny-f16", files["plain"])
    name = f"tiny-{kind.lower()}"
    lines = create_from(server, name, files["plain"], quantize=kind)
    progress = [line for line in lines if str(line["status"]).startswith("quantizing")]
    assert progress[0]["status"] == f"quantizing F16 model to {kind.upper()}"
    assert progress[-1]["completed"] == progress[-1]["total"] == files["plain"].stat().st_size
    models = {m["name"]: m for m in server.http.get("/api/tags").json()["models"]}
    quantized, source = models[f"{name}:latest"], models["tiny-f16:latest"]
    assert quantized["details"]["quantization_level"] == kind.upper()
    assert quantized["size"] < source["size"]
    assert generate(server, name)["done"] is True


def test_quantize_is_refused_for_a_quantized_model_or_an_unknown_type(
    server: LiveServer, gguf_path: Path, files: dict[str, Path]
) -> None:
    digest = upload_blob(server.url, gguf_path)
    refused = create(server, "smol-q8", files={gguf_path.name: digest}, quantize="q8_0")
    assert refused.status_code == 400
    assert refused.json()["error"] == "quantization is only supported for F16, BF16 and F32 models"
    unknown = create(server, "tiny-q2", files={files["plain"].name: upload_blob(server.url, files["plain"])},
                     quantize="q2_K")
    assert unknown.status_code == 400 and "supported types are q4_K_M, q4_K_S, q8_0" in unknown.json()["error"]
    odd = tinymodel.write_unknown(files["plain"].parent / "odd.gguf")
    failed = create(server, "odd-q8", files={odd.name: upload_blob(server.url, odd)}, quantize="q8_0")
    assert failed.status_code == 400
    assert failed.json()["error"].startswith("quantization to Q8_0 failed: ")
    names = [m["name"] for m in server.http.get("/api/tags").json()["models"]]
    assert not {"smol-q8:latest", "tiny-q2:latest", "odd-q8:latest"} & set(names)
    blobs = server.models / "blobs"
    assert not [p for p in blobs.iterdir() if p.name.startswith(".tmp-")]


def test_llmctl_create_quantize(server: LiveServer, files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {files['plain']}\nTEMPLATE {{{{ .Prompt }}}}\n")
    r = run_llmctl("create", "tiny-ctl-q8", "--quantize", "q8_0", env=server.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines.count("quantizing F16 model to Q8_0") == 1 and lines[-1] == "success"
    shown = run_llmctl("show", "tiny-ctl-q8", env=server.env)
    assert "Q8_0" in shown.stdout
