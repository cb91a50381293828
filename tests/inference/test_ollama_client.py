"""The official ollama package generates, chats and embeds against a live llmd with SmolLM2."""

from __future__ import annotations

import json
import math

import httpx
import ollama
import pydantic
import pytest
from harness import LiveServer, create_smollm2
from inference.conftest import MODEL, TOOLS_MODEL, TOOLS_TEMPLATE

GREEDY = {"temperature": 0, "seed": 1, "num_predict": 12}
METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
           "eval_count", "eval_duration")


@pytest.fixture(scope="module")
def client(server: LiveServer) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=300)


def test_generate_returns_text_metrics_and_context(client: ollama.Client) -> None:
    reply = client.generate(MODEL, "Name a colour.", options=GREEDY)
    assert reply.response and reply.done and reply.done_reason in ("stop", "length")
    for key in METRICS:
        # load_duration is 0, so left out as Ollama leaves it out, when the model was loaded
        assert isinstance(getattr(reply, key), int) or key == "load_duration"
    assert reply.eval_count and reply.eval_count > 0
    assert reply.context and all(isinstance(t, int) for t in reply.context)


def test_streamed_generate_ends_with_one_done_chunk(client: ollama.Client) -> None:
    chunks = list(client.generate(MODEL, "Count to five.", options=GREEDY, stream=True))
    assert [c.done for c in chunks].count(True) == 1 and chunks[-1].done
    assert "".join(c.response for c in chunks).strip()
    assert chunks[-1].done_reason in ("stop", "length") and chunks[-1].eval_count


def test_streamed_and_whole_chat_answer_the_same_with_greedy_sampling(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    whole = client.chat(MODEL, messages, options=GREEDY)
    parts = list(client.chat(MODEL, messages, options=GREEDY, stream=True))
    assert whole.message.role == "assistant" and whole.message.content
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    # the second run finds the prompt in its slot: only what is not cached counts, as in Ollama
    assert parts[-1].done and 0 < (parts[-1].prompt_eval_count or 0) <= (whole.prompt_eval_count or 0)


def test_num_predict_limit_ends_with_done_reason_length(client: ollama.Client) -> None:
    reply = client.generate(MODEL, "Write a long story about a dragon.",
                            options={"temperature": 0, "num_predict": 3})
    assert reply.done_reason == "length" and reply.eval_count == 3


def test_chat_with_a_pydantic_schema_returns_json_that_validates(client: ollama.Client) -> None:
    class Country(pydantic.BaseModel):
        name: str
        capital: str

    reply = client.chat(
        MODEL, [{"role": "user", "content": "Tell me about France as JSON."}],
        format=Country.model_json_schema(), options={"temperature": 0, "num_predict": 60},
    )
    country = Country.model_validate_json(reply.message.content or "")
    assert isinstance(country.name, str)


def test_format_json_gives_a_json_object(client: ollama.Client) -> None:
    reply = client.generate(MODEL, "Describe a cat as JSON with keys name and colour.",
                            format="json", options={"temperature": 0, "num_predict": 80})
    assert reply.done_reason == "stop" and isinstance(json.loads(reply.response), dict)


def test_a_tool_call_is_parsed_into_message_tool_calls(
    server: LiveServer, client: ollama.Client, gguf_path: object
) -> None:
    create_smollm2(server.url, gguf_path, TOOLS_MODEL, template=TOOLS_TEMPLATE)  # type: ignore[arg-type]
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}
    # The grammar forces the call's JSON, so the test checks parsing, not the model's judgement.
    forced = {"type": "object", "properties": {
        "name": {"type": "string", "enum": ["get_weather"]},
        "arguments": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
                      "required": ["city"]}},
        "required": ["name", "arguments"]}
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    whole = client.chat(TOOLS_MODEL, messages, tools=[tool], format=forced, options={"temperature": 0})
    calls = whole.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"})]
    streamed = [c for part in client.chat(TOOLS_MODEL, messages, tools=[tool], format=forced,
                                          options={"temperature": 0}, stream=True)
                for c in part.message.tool_calls or []]
    assert [c.function.name for c in streamed] == ["get_weather"]
    raw = httpx.post(f"{server.url}/api/chat", timeout=300, json={
        "model": TOOLS_MODEL, "messages": messages, "tools": [tool], "format": forced,
        "stream": False, "options": {"temperature": 0}}).json()
    call_id = raw["message"]["tool_calls"][0]["id"]
    assert len(call_id) == 8 and call_id.isalnum() and call_id == call_id.lower()


def test_tools_on_a_template_without_tools_are_refused(client: ollama.Client) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(MODEL, [{"role": "user", "content": "hi"}], tools=[tool])
    assert info.value.status_code == 400 and "does not support tools" in info.value.error


def test_think_on_a_model_without_thinking_is_refused(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(MODEL, [{"role": "user", "content": "hi"}], think=True)
    assert info.value.status_code == 400
    assert info.value.error == f'"{MODEL}" does not support thinking'


def test_embed_returns_unit_vectors_and_a_token_count(client: ollama.Client) -> None:
    reply = client.embed(MODEL, ["hello world", "goodbye"])
    assert len(reply.embeddings) == 2
    for vector in reply.embeddings:
        assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-4)
    assert reply.prompt_eval_count and reply.prompt_eval_count > 0


def test_embed_with_dimensions_slices_and_renormalises(client: ollama.Client) -> None:
    vector = client.embed(MODEL, "hello", dimensions=8).embeddings[0]
    assert len(vector) == 8
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-4)


def test_embed_of_no_input_returns_no_embeddings(server: LiveServer) -> None:
    body = server.http.post("/api/embed", json={"model": MODEL, "input": []}).json()
    assert body["model"] == MODEL and body["embeddings"] == []


def test_legacy_embeddings_return_one_vector(client: ollama.Client) -> None:
    assert len(client.embeddings(MODEL, "hello").embedding) > 0


def test_empty_prompt_loads_and_keep_alive_zero_unloads(server: LiveServer) -> None:
    loaded = server.http.post("/api/generate", json={"model": MODEL, "keep_alive": -1}).json()
    assert loaded["done"] is True and loaded["done_reason"] == "load" and loaded["response"] == ""
    ps = server.http.get("/api/ps").json()["models"]
    entry = next(m for m in ps if m["name"] == MODEL)
    assert entry["expires_at"] > "2200" and entry["size"] > 0
    assert entry["size_vram"] == 0 and entry["context_length"] > 0 and entry["details"]
    unloaded = server.http.post("/api/chat", json={"model": MODEL, "messages": [], "keep_alive": 0})
    assert unloaded.json()["done_reason"] == "unload"
    assert unloaded.json()["message"] == {"role": "assistant", "content": ""}
    assert MODEL not in [m["name"] for m in server.http.get("/api/ps").json()["models"]]


def test_logprobs_come_with_each_token_and_its_alternatives(server: LiveServer) -> None:
    body = server.http.post("/api/generate", json={
        "model": MODEL, "prompt": "Say yes.", "stream": False, "logprobs": True, "top_logprobs": 2,
        "options": {"temperature": 0, "num_predict": 3}}).json()
    assert len(body["logprobs"]) == body["eval_count"] == 3
    first = body["logprobs"][0]
    assert isinstance(first["token"], str) and first["logprob"] <= 0
    assert len(first["top_logprobs"]) == 2


def test_modelfile_system_is_used_and_a_request_system_overrides_it(
    server: LiveServer, gguf_path: object
) -> None:
    create_smollm2(server.url, gguf_path, "smollm2-pirate:135m",  # type: ignore[arg-type]
                   system="You are a pirate.")
    body = {"model": "smollm2-pirate:135m", "prompt": "Hello", "stream": False,
            "options": {"num_predict": 1}}
    with_modelfile = server.http.post("/api/generate", json=body).json()
    longer = "You are a pirate who sails the seven seas and speaks only in rhymes."
    overridden = server.http.post("/api/generate", json={**body, "system": longer}).json()
    plain = server.http.post("/api/generate", json={**body, "model": MODEL}).json()
    # SmolLM2's own template has a default system prompt; the Modelfile's replaces it, and the
    # request's replaces that: each shows in the prompt's length (``context`` less the answer;
    # prompt_eval_count leaves out what a slot already held)
    def prompt(reply: dict[str, object]) -> int:
        return len(reply["context"]) - int(reply["eval_count"])  # type: ignore[arg-type]

    assert prompt(plain) > prompt(with_modelfile)
    assert prompt(overridden) > prompt(with_modelfile)
