"""Answers that were wrong without an error: a pre-filled <think>, load-only requests, zero
metrics, and the memory an embed adds to a generating runner."""

from __future__ import annotations

import pytest
from harness import LiveServer, create_smollm2
from inference.conftest import MODEL
from llmd.api.inference import chat_json, generate_json
from llmd.inference.values import Final

pytestmark = pytest.mark.model

# As the DeepSeek-R1 distills and QwQ do: the template opens the reasoning for the model.
PREFILL_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}"
    "{{ if .Thinking }}{{ .Thinking }}{{ end }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n<think>\n"
)


def test_a_template_that_prefills_think_puts_the_reasoning_into_thinking(
    server: LiveServer, gguf_path: object
) -> None:
    create_smollm2(server.url, gguf_path, "smollm2-prefill:135m",  # type: ignore[arg-type]
                   template=PREFILL_TEMPLATE)
    body = {"model": "smollm2-prefill:135m", "stream": False,
            "messages": [{"role": "user", "content": "Why is the sky blue?"}],
            "options": {"temperature": 0, "seed": 1, "num_predict": 16}}
    message = server.http.post("/api/chat", json=body).json()["message"]
    # SmolLM2 never writes </think>: everything it says is reasoning the template opened
    assert message["thinking"].strip() and message["content"] == ""
    generated = server.http.post("/api/generate", json={
        "model": "smollm2-prefill:135m", "prompt": "Why is the sky blue?", "stream": False,
        "options": {"temperature": 0, "num_predict": 16}}).json()
    assert generated["thinking"].strip() and generated["response"] == ""


@pytest.mark.parametrize(("path", "body"), [
    ("/api/generate", {"model": MODEL}),
    ("/api/chat", {"model": MODEL, "messages": []}),
])
def test_a_load_only_request_answers_one_json_object_without_metrics(
    server: LiveServer, path: str, body: dict[str, object]
) -> None:
    response = server.http.post(path, json=body)  # stream defaults to true
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    answer = response.json()
    assert answer["done"] is True and answer["done_reason"] == "load"
    assert set(answer) == {"model", "created_at", "done", "done_reason",
                           "response" if path == "/api/generate" else "message"}


def test_zero_metrics_are_left_out_as_ollama_leaves_them_out() -> None:
    final = Final("stop", total_duration=5, prompt_eval_count=3, prompt_eval_duration=2)
    for render in (generate_json, chat_json):
        out = render(MODEL, final)
        assert out["total_duration"] == 5 and out["prompt_eval_count"] == 3
        assert not {"load_duration", "eval_count", "eval_duration"} & set(out)


def test_the_first_embed_on_a_generating_model_counts_its_embedding_context(
    server: LiveServer, gguf_path: object
) -> None:
    name = "smollm2-embed-size:135m"
    create_smollm2(server.url, gguf_path, name)  # type: ignore[arg-type]

    def size() -> int:
        ps = server.http.get("/api/ps").json()["models"]
        return int(next(m["size"] for m in ps if m["name"] == name))

    # the runner is per weights: unload whichever name loaded it, to start from a fresh one
    server.http.post("/api/generate", json={"model": MODEL, "keep_alive": 0})
    server.http.post("/api/generate", json={"model": name, "keep_alive": -1})
    before = size()
    reply = server.http.post("/api/embed", json={"model": name, "input": "hello"})
    assert reply.status_code == 200
    # SmolLM2's embedding context at 4096 tokens: 90 MiB of KV, 809 MiB of compute buffer
    assert size() - before > 800 * 1024 * 1024
    server.http.post("/api/generate", json={"model": name, "keep_alive": 0})
