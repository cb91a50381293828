"""The OpenAPI 3.1 document of the whole HTTP API, served at ``GET /api/openapi.json``.

Ollama publishes none; this one makes client generation and fuzzing (tests/fuzz) possible. It is
built from small pieces so a route added later is a few lines here:

    PATHS["/v1/messages"] = {"post": operation(
        "anthropicMessages", "Anthropic Messages", tag="anthropic",
        body=ref("MessagesRequest"), ok=json_ok(ref("AnthropicMessage"), sse=ref("MessageEvent")),
        errors=ANTHROPIC_ERRORS)}
    SCHEMAS["MessagesRequest"] = request({...}, required=("model", "max_tokens", "messages"))

tests/api/test_openapi.py holds it to the app: every route is documented and every documented
operation is a route, and each request schema's ``required`` and property types are what the
validators (api/*schemas*.py, api/openai_convert.py, api/responses_convert.py,
api/anthropic_convert.py) enforce. Field names are Ollama's (and OpenAI's or Anthropic's under
/v1); errors are ``{"error": "..."}`` natively, OpenAI's object under /v1 and Anthropic's
``{"type": "error", "error": {...}}`` under /v1/messages.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import llmd
from llmd.api.errors import OllamaJSONResponse
from llmd.api.streaming import NDJSON

Schema = dict[str, Any]

JSON = "application/json"
SSE = "text/event-stream"
DEFAULT_MODEL = "smollm2:135m"  # what `make run` imports; every example names it

# --- pieces --------------------------------------------------------------------------------------

STRING: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
INT: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
ANY_OBJECT: Schema = {"type": "object"}
STRINGS: Schema = {"type": "array", "items": STRING}
TIME: Schema = {"type": "string", "format": "date-time"}
BASE64: Schema = {"type": "string", "contentEncoding": "base64",
                  "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"}
# Go's time.ParseDuration, as config.parse_go_duration reads it
GO_DURATION: Schema = {"type": "string",
                       "pattern": r"^\s*[+-]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)\s*$"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    """An object schema; unknown fields are allowed, as Go's encoding/json ignores them."""
    out: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def nullable(schema: Schema) -> Schema:
    """Also null, which Go's encoding/json takes as absent for any field."""
    plain = isinstance(schema.get("type"), str) and not {"enum", "const"} & schema.keys()
    return {**schema, "type": [schema["type"], "null"]} if plain else {"anyOf": [schema, {"type": "null"}]}


def request(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    """A request body: as ``obj``; an optional field may be null, a required string is non-empty
    (Go decodes null and "" alike as absent)."""
    def field(key: str, value: Schema) -> Schema:
        if key not in required:
            return nullable(value)
        return {**value, "minLength": 1} if value.get("type") == "string" else value

    return obj({key: field(key, value) for key, value in properties.items()}, required, **extra)


def described(schema: Schema, text: str) -> Schema:
    return {**schema, "description": text}


def one_of(*schemas: Schema) -> Schema:
    return {"oneOf": list(schemas)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def content(schema: Schema, media_type: str = JSON) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def json_ok(schema: Schema | None, *, ndjson: Schema | None = None, sse: Schema | None = None,
            text: str = "OK") -> dict[str, Any]:
    """A 200 answer: one JSON object, and for streaming routes each NDJSON line or SSE event."""
    body: dict[str, Any] = {}
    if schema is not None:
        body.update(content(schema))
    if ndjson is not None:
        body.update(content(ndjson, NDJSON))
    if sse is not None:
        body.update(content(sse, SSE))
    return {"200": {"description": text, "content": body}} if body else {"200": {"description": text}}


def error_responses(schema: Schema, statuses: dict[str, str]) -> dict[str, Any]:
    out = {status: {"description": text, "content": content(schema)} for status, text in statuses.items()}
    out["default"] = {"description": "Any other error", "content": content(schema)}
    return out


_COMMON = {"400": "Invalid request: the message names the field", "500": "Internal or runner error"}
NATIVE_ERRORS = error_responses(ref("Error"), {**_COMMON, "404": "Model not found"})
INFERENCE_ERRORS = error_responses(
    ref("Error"), {**_COMMON, "404": "Model not found", "503": "Server busy: the queue is full"}
)
OPENAI_ERRORS = error_responses(
    ref("OpenAIError"), {**_COMMON, "404": "Model not found", "503": "Server busy: the queue is full"}
)
ANTHROPIC_ERRORS = error_responses(
    ref("AnthropicError"), {**_COMMON, "404": "Model not found", "503": "Server busy: the queue is full"}
)


def operation(op_id: str, summary: str, *, tag: str, ok: dict[str, Any],
              body: Schema | None = None, example: dict[str, Any] | None = None,
              body_required: bool = True, errors: dict[str, Any] | None = None,
              parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag],
                           "responses": {**ok, **(errors or {})}}
    if body is not None:
        media: dict[str, Any] = {"schema": body}
        if example is not None:
            media["example"] = example
        out["requestBody"] = {"required": body_required, "content": {JSON: media}}
    if parameters:
        out["parameters"] = parameters
    return out


def head_of(get: dict[str, Any]) -> dict[str, Any]:
    """HEAD beside a GET (Starlette answers it for every GET route): headers only."""
    out = {k: v for k, v in get.items() if k not in ("responses", "requestBody")}
    out["operationId"] = f"{get['operationId']}Head"
    out["responses"] = {"200": {"description": "As GET, without a body"},
                        "default": {"description": "An error, without a body"}}
    return out


def get_and_head(get: dict[str, Any]) -> dict[str, Any]:
    return {"get": get, "head": head_of(get)}


def path_parameter(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": text,
            "schema": {"type": "string", "minLength": 1}}


# --- schemas -------------------------------------------------------------------------------------

_OPTION_PROPS: dict[str, Schema] = {
    **{key: INT for key in ("num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx",
                            "num_batch", "num_gpu", "main_gpu", "num_thread")},
    **{key: NUMBER for key in ("top_p", "min_p", "typical_p", "temperature", "repeat_penalty",
                               "presence_penalty", "frequency_penalty")},
    "stop": one_of(STRING, STRINGS),
    "use_mmap": BOOL,
}
_KEEP_ALIVE = described(one_of(GO_DURATION, NUMBER),
                        'A Go duration ("5m", "1h30m") or seconds; 0 unloads after the request, '
                        "a negative value keeps the model forever")
_FORMAT = described(one_of({"type": "string", "enum": ["", "json"]}, ANY_OBJECT),
                    '"json", or a JSON Schema object the output must match')
_THINK = one_of(BOOL, {"type": "string", "enum": ["high", "medium", "low", "max"]})
_SAMPLING: dict[str, Schema] = {
    "options": ref("Options"), "keep_alive": _KEEP_ALIVE, "format": _FORMAT, "think": _THINK,
    "stream": described(BOOL, "Stream NDJSON objects (the default) or answer one object"),
    "truncate": BOOL, "shift": BOOL, "logprobs": BOOL,
    "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
}
_METRICS: dict[str, Schema] = {key: INT for key in (
    "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
    "eval_duration")}
_DONE: dict[str, Schema] = {"done": BOOL, "done_reason": STRING, **_METRICS}
_NAME = described(STRING, "A model name, [host/][namespace/]model[:tag]")
_TOOL_CALL = obj({"id": STRING, "function": obj(
    {"index": INT, "name": STRING, "arguments": ANY_OBJECT})})
_DETAILS = obj({"parent_model": STRING, "format": STRING, "family": STRING, "families": STRINGS,
                "parameter_size": STRING, "quantization_level": STRING})
_SUMMARY = {"name": STRING, "model": STRING, "size": INT, "digest": STRING, "details": ref("Details")}
_TRANSFER = request({"model": _NAME, "name": described(STRING, "Deprecated spelling of model"),
                 "insecure": BOOL, "stream": BOOL, "username": STRING, "password": STRING},
                required=("model",))
_OPENAI_SAMPLING: dict[str, Schema] = {
    "model": STRING, "stream": BOOL, "stream_options": obj({"include_usage": BOOL}),
    "max_tokens": INT, "temperature": NUMBER, "top_p": NUMBER, "seed": INT,
    "frequency_penalty": NUMBER, "presence_penalty": NUMBER, "stop": one_of(STRING, STRINGS),
    "n": {"type": "integer", "const": 1},
}
_ANTHROPIC_BODY: dict[str, Schema] = {
    "model": STRING,
    "messages": described({**array(ANY_OBJECT), "minItems": 1},
                          '{"role": "user" | "assistant", "content": a string or blocks}'),
    "system": one_of(STRING, array(ANY_OBJECT)), "stop_sequences": STRINGS,
    "temperature": NUMBER, "top_p": NUMBER, "top_k": INT, "tools": array(ANY_OBJECT),
    "tool_choice": ANY_OBJECT, "thinking": ANY_OBJECT, "output_config": ANY_OBJECT,
    "metadata": {}, "cache_control": {},  # accepted and ignored
}
_OPENAI_USAGE = obj({"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT})

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": STRING}, required=("error",)),
    "OpenAIError": obj({"error": obj({"message": STRING, "type": STRING, "param": {},
                                      "code": {}}, required=("message", "type"))},
                       required=("error",)),
    "Options": described(obj(_OPTION_PROPS), "Model parameters (Modelfile PARAMETER names)"),
    "Details": _DETAILS,
    "ToolCall": _TOOL_CALL,
    "Message": obj({"role": STRING, "content": STRING, "thinking": STRING,
                    "images": described(array(BASE64), "Base64-encoded images"),
                    "tool_calls": array(ref("ToolCall")), "tool_name": STRING,
                    "tool_call_id": STRING}),
    "Tool": obj({"type": STRING, "function": obj({"name": STRING, "description": STRING,
                                                   "parameters": ANY_OBJECT})}),
    "GenerateRequest": request({"model": _NAME, "prompt": STRING, "suffix": STRING, "system": STRING,
                            "template": STRING, "context": array(INT), "raw": BOOL,
                            "images": array(BASE64), **_SAMPLING}, required=("model",)),
    "GenerateResponse": obj({"model": STRING, "created_at": TIME, "response": STRING,
                             "thinking": STRING, "context": array(INT), "logprobs": array(ANY_OBJECT),
                             **_DONE}, required=("model", "created_at", "response", "done")),
    "ChatRequest": request({"model": _NAME, "messages": array(ref("Message")),
                        "tools": array(ref("Tool")), **_SAMPLING}, required=("model",)),
    "ChatResponse": obj({"model": STRING, "created_at": TIME, "message": ref("Message"),
                         "logprobs": array(ANY_OBJECT), **_DONE},
                        required=("model", "created_at", "message", "done")),
    "EmbedRequest": request({"model": _NAME, "input": one_of(STRING, STRINGS), "truncate": BOOL,
                         "dimensions": {"type": "integer", "minimum": 0}, "options": ref("Options"),
                         "keep_alive": _KEEP_ALIVE}, required=("model",)),
    "EmbedResponse": obj({"model": STRING, "embeddings": array(array(NUMBER)), **_METRICS},
                         required=("model", "embeddings")),
    "EmbeddingsRequest": request({"model": _NAME, "prompt": STRING, "options": ref("Options"),
                              "keep_alive": _KEEP_ALIVE}, required=("model",)),
    "EmbeddingsResponse": obj({"embedding": array(NUMBER)}, required=("embedding",)),
    "Status": described(obj({"status": STRING, "digest": STRING, "total": INT, "completed": INT}),
                        "One progress object; an error after the first is a line {\"error\": ...}"),
    "ShowRequest": request({"model": _NAME, "name": described(STRING, "Deprecated spelling of model"),
                        "verbose": BOOL}, required=("model",)),
    "ShowResponse": obj({"license": STRING, "modelfile": STRING, "parameters": STRING,
                         "template": STRING, "system": STRING, "details": ref("Details"),
                         "messages": array(ref("Message")), "model_info": ANY_OBJECT,
                         "capabilities": STRINGS, "modified_at": TIME},
                        required=("details", "model_info", "capabilities", "modified_at")),
    "CreateRequest": request({"model": _NAME, "from": _NAME,
                          "files": described({"type": "object", "additionalProperties": STRING},
                                             "File name -> sha256:<hex> of an uploaded blob"),
                          "adapters": {"type": "object", "additionalProperties": STRING},
                          "template": STRING, "system": STRING, "license": one_of(STRING, STRINGS),
                          "parameters": ANY_OBJECT,
                          "messages": array(obj({"role": STRING, "content": STRING})),
                          "stream": BOOL}, required=("model",),
                         anyOf=[{"required": ["from"]}, {"required": ["files"]}]),
    "CopyRequest": request({"source": _NAME, "destination": _NAME}, required=("source", "destination")),
    "DeleteRequest": request({"model": _NAME, "name": described(STRING, "Deprecated spelling of model")},
                         required=("model",)),
    "PullRequest": _TRANSFER,
    "PushRequest": _TRANSFER,
    "VerifyRequest": request({"model": described(_NAME, "Verify this model; absent: every model"),
                          "stream": BOOL}),
    "VerifyStatus": obj({"status": STRING, "digest": STRING, "total": INT, "corrupt": BOOL}),
    "TagsResponse": obj({"models": array(obj({**_SUMMARY, "modified_at": TIME}))},
                        required=("models",)),
    "PsResponse": obj({"models": array(obj({**_SUMMARY, "expires_at": TIME, "size_vram": INT,
                                            "context_length": INT}))}, required=("models",)),
    "VersionResponse": obj({"version": STRING}, required=("version",)),
    "ChatCompletionRequest": request({**_OPENAI_SAMPLING, "messages": array(ANY_OBJECT),
                                  "max_completion_tokens": INT, "tools": array(ANY_OBJECT),
                                  "tool_choice": {}, "response_format": ANY_OBJECT,
                                  "reasoning_effort": STRING, "logprobs": BOOL,
                                  "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20}},
                                 required=("model", "messages")),
    "ChatCompletion": obj({"id": STRING, "object": {"const": "chat.completion"}, "created": INT,
                           "model": STRING, "system_fingerprint": STRING,
                           "choices": array(ANY_OBJECT), "usage": _OPENAI_USAGE},
                          required=("id", "object", "created", "model", "choices")),
    "CompletionRequest": request({**_OPENAI_SAMPLING, "prompt": STRING, "suffix": STRING,
                              "logprobs": {"type": "integer", "minimum": 0}}, required=("model",)),
    "Completion": obj({"id": STRING, "object": {"const": "text_completion"}, "created": INT,
                       "model": STRING, "system_fingerprint": STRING, "choices": array(ANY_OBJECT),
                       "usage": _OPENAI_USAGE}, required=("id", "object", "created", "model", "choices")),
    "StreamEvent": described(STRING, 'SSE "data: <JSON chunk>" events, then "data: [DONE]"'),
    "OpenAIEmbeddingsRequest": request({"model": STRING, "input": one_of(STRING, {**STRINGS, "minItems": 1}),
                                    "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                                    "dimensions": INT}, required=("model", "input")),
    "OpenAIEmbeddings": obj({"object": {"const": "list"}, "data": array(ANY_OBJECT), "model": STRING,
                             "usage": ANY_OBJECT}, required=("object", "data", "model")),
    "Model": obj({"id": STRING, "object": {"const": "model"}, "created": INT, "owned_by": STRING},
                 required=("id", "object", "created", "owned_by")),
    "ModelList": obj({"object": {"const": "list"}, "data": array(ref("Model"))},
                     required=("object", "data")),
    "ResponsesRequest": request({
        "model": STRING,
        "input": described(one_of(STRING, array(ANY_OBJECT)),
                           "One user message, or message, function_call, function_call_output "
                           "and reasoning items"),
        "instructions": STRING, "max_output_tokens": INT, "temperature": NUMBER, "top_p": NUMBER,
        "text": obj({"format": ANY_OBJECT}), "tools": array(ANY_OBJECT),
        "tool_choice": one_of(STRING, ANY_OBJECT), "reasoning": obj({"effort": STRING}),
        "stream": described(BOOL, "The Responses event sequence over SSE"),
        # accepted, echoed or ignored: any JSON
        "store": {}, "include": {}, "metadata": {}, "truncation": {}, "parallel_tool_calls": {},
    }, required=("model", "input")),
    "Response": obj({"id": STRING, "object": {"const": "response"}, "created_at": INT,
                     "status": STRING, "model": STRING, "output": array(ANY_OBJECT),
                     "usage": nullable(ANY_OBJECT)},
                    required=("id", "object", "created_at", "status", "model", "output")),
    "ResponseEvent": described(STRING, 'SSE "event: <type>" / "data: <JSON>" pairs, '
                               'response.created to response.completed (or response.failed)'),
    "AnthropicError": obj({"type": {"const": "error"},
                           "error": obj({"type": STRING, "message": STRING},
                                        required=("type", "message"))},
                          required=("type", "error")),
    "MessagesRequest": request(
        {**_ANTHROPIC_BODY, "max_tokens": {"type": "integer", "minimum": 1},
         "stream": described(BOOL, "Anthropic's event sequence over SSE")},
        required=("model", "max_tokens", "messages")),
    "AnthropicMessage": obj({"id": STRING, "type": {"const": "message"},
                             "role": {"const": "assistant"}, "model": STRING,
                             "content": array(ANY_OBJECT), "stop_reason": nullable(STRING),
                             "stop_sequence": nullable(STRING), "usage": ANY_OBJECT},
                            required=("id", "type", "role", "model", "content", "usage")),
    "MessageEvent": described(STRING, 'SSE "event: <type>" / "data: <JSON>" pairs, message_start '
                              'to message_stop (or an error event)'),
    "CountTokensRequest": request(_ANTHROPIC_BODY, required=("model", "messages")),
    "TokenCount": obj({"input_tokens": INT}, required=("input_tokens",)),
    "HealthStatus": obj({"status": {"const": "ok"}}, required=("status",)),
    "ReadyStatus": described(obj({"status": STRING, "detail": {}}, required=("status",)),
                             '"ready", or what it waits for: "starting", "draining", '
                             '"queue full", "models" (detail names them)'),
}

# --- operations ----------------------------------------------------------------------------------

_HI = [{"role": "user", "content": "Hi"}]
_DIGEST = path_parameter("digest", "sha256:<64 hex> (sha256-<hex> is accepted too)")


def _native(op_id: str, summary: str, request: str, response: str, example: dict[str, Any], *,
            tag: str, streams: bool = True, errors: dict[str, Any] = NATIVE_ERRORS,
            ndjson: str | None = None) -> dict[str, Any]:
    """A native POST taking a JSON body; a streamed one answers NDJSON unless ``stream: false``."""
    ok = json_ok(ref(response), ndjson=ref(ndjson or response) if streams else None)
    return {"post": operation(op_id, summary, tag=tag, body=ref(request), example=example, ok=ok,
                              errors=errors)}


PATHS: dict[str, dict[str, Any]] = {
    "/": get_and_head(operation(
        "root", "Liveness: answers the text 'Ollama is running'", tag="server",
        ok={"200": {"description": "Running", "content": content(STRING, "text/plain")}})),
    "/api/version": get_and_head(operation(
        "version", "The server's version", tag="server", ok=json_ok(ref("VersionResponse")))),
    "/api/openapi.json": get_and_head(operation(
        "openapi", "This document", tag="server", ok=json_ok(ANY_OBJECT))),
    "/api/generate": _native(
        "generate", "Generate a completion", "GenerateRequest", "GenerateResponse",
        {"model": DEFAULT_MODEL, "prompt": "Why is the sky blue?", "stream": False,
         "options": {"num_predict": 8}}, tag="inference", errors=INFERENCE_ERRORS),
    "/api/chat": _native("chat", "Generate the next chat message", "ChatRequest", "ChatResponse",
                         {"model": DEFAULT_MODEL, "messages": _HI, "stream": False,
                          "options": {"num_predict": 8}}, tag="inference", errors=INFERENCE_ERRORS),
    "/api/embed": _native("embed", "Embed one or more inputs", "EmbedRequest", "EmbedResponse",
                          {"model": DEFAULT_MODEL, "input": ["Hello"]}, tag="inference",
                          streams=False, errors=INFERENCE_ERRORS),
    "/api/embeddings": _native("embeddings", "Embed one prompt (deprecated: use /api/embed)",
                               "EmbeddingsRequest", "EmbeddingsResponse",
                               {"model": DEFAULT_MODEL, "prompt": "Hello"}, tag="inference",
                               streams=False, errors=INFERENCE_ERRORS),
    "/api/ps": get_and_head(operation("ps", "Models loaded in memory", tag="inference",
                                      ok=json_ok(ref("PsResponse")))),
    "/api/tags": get_and_head(operation("tags", "Models in the store", tag="models",
                                        ok=json_ok(ref("TagsResponse")))),
    "/api/show": _native("show", "A model's details, Modelfile, template and parameters",
                         "ShowRequest", "ShowResponse", {"model": DEFAULT_MODEL}, tag="models",
                         streams=False),
    "/api/create": _native("create", "Create a model from uploaded blobs or another model",
                           "CreateRequest", "Status",
                           {"model": "smollm2-terse:135m", "from": DEFAULT_MODEL,
                            "system": "Answer in one sentence.", "stream": False}, tag="models"),
    "/api/copy": {"post": operation(
        "copy", "Copy a model under another name", tag="models", body=ref("CopyRequest"),
        example={"source": DEFAULT_MODEL, "destination": "smollm2-copy:135m"},
        ok=json_ok(None, text="Copied"), errors=NATIVE_ERRORS)},
    "/api/delete": {"delete": operation(
        "delete", "Delete a model", tag="models", body=ref("DeleteRequest"),
        example={"model": "smollm2-copy:135m"}, ok=json_ok(None, text="Deleted"),
        errors=NATIVE_ERRORS)},
    "/api/blobs/{digest}": {
        "head": operation("blobExists", "Whether a blob is in the store", tag="models",
                          parameters=[_DIGEST],
                          ok={"200": {"description": "Present"},
                              "default": {"description": "Absent (404) or a bad digest (400)"}}),
        "post": {**operation(
            "pushBlob", "Upload a blob; its content must hash to the digest", tag="models",
            parameters=[_DIGEST], errors=NATIVE_ERRORS,
            ok={"200": {"description": "Already present"}, "201": {"description": "Created"}}),
            "requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    },
    "/api/pull": _native("pull", "Download a model from a registry", "PullRequest", "Status",
                         {"model": DEFAULT_MODEL, "stream": False}, tag="registry"),
    "/api/push": _native("push", "Upload a model to a registry", "PushRequest", "Status",
                         {"model": "registry.example/team/smollm2:135m", "stream": False},
                         tag="registry"),
    "/api/verify": {"post": operation(
        "verify", "Hash a model's blobs (or every model's) again and report corrupt ones",
        tag="registry", body=ref("VerifyRequest"), body_required=False,
        example={"model": DEFAULT_MODEL, "stream": False},
        ok=json_ok(ref("VerifyStatus"), ndjson=ref("VerifyStatus")), errors=NATIVE_ERRORS)},
    "/v1/chat/completions": {"post": operation(
        "openaiChatCompletions", "OpenAI chat completions", tag="openai",
        body=ref("ChatCompletionRequest"), example={"model": DEFAULT_MODEL, "messages": _HI, "max_tokens": 8},
        ok=json_ok(ref("ChatCompletion"), sse=ref("StreamEvent")), errors=OPENAI_ERRORS)},
    "/v1/completions": {"post": operation(
        "openaiCompletions", "OpenAI (legacy) completions", tag="openai",
        body=ref("CompletionRequest"),
        example={"model": DEFAULT_MODEL, "prompt": "Once upon a time", "max_tokens": 8},
        ok=json_ok(ref("Completion"), sse=ref("StreamEvent")), errors=OPENAI_ERRORS)},
    "/v1/embeddings": {"post": operation(
        "openaiEmbeddings", "OpenAI embeddings", tag="openai", body=ref("OpenAIEmbeddingsRequest"),
        example={"model": DEFAULT_MODEL, "input": "Hello"}, ok=json_ok(ref("OpenAIEmbeddings")),
        errors=OPENAI_ERRORS)},
    "/v1/responses": {"post": operation(
        "openaiResponses", "OpenAI Responses (stateless: the whole conversation in input)",
        tag="openai", body=ref("ResponsesRequest"),
        example={"model": DEFAULT_MODEL, "input": "Hi", "max_output_tokens": 8},
        ok=json_ok(ref("Response"), sse=ref("ResponseEvent")), errors=OPENAI_ERRORS)},
    "/v1/messages": {"post": operation(
        "anthropicMessages", "Anthropic Messages", tag="anthropic", body=ref("MessagesRequest"),
        example={"model": DEFAULT_MODEL, "max_tokens": 8, "messages": _HI},
        ok=json_ok(ref("AnthropicMessage"), sse=ref("MessageEvent")), errors=ANTHROPIC_ERRORS)},
    "/v1/messages/count_tokens": {"post": operation(
        "anthropicCountTokens", "Count a Messages body's prompt tokens", tag="anthropic",
        body=ref("CountTokensRequest"), example={"model": DEFAULT_MODEL, "messages": _HI},
        ok=json_ok(ref("TokenCount")), errors=ANTHROPIC_ERRORS)},
    "/health": get_and_head(operation(
        "health", "Liveness: 200 while the daemon answers", tag="monitoring",
        ok=json_ok(ref("HealthStatus")))),
    "/ready": get_and_head(operation(
        "ready", "Readiness: whether a request sent now would be taken", tag="monitoring",
        ok={**json_ok(ref("ReadyStatus"), text="Ready"),
            "503": {"description": "Not ready", "content": content(ref("ReadyStatus"))}})),
    "/metrics": get_and_head(operation(
        "metrics", "Prometheus metrics (text exposition format 0.0.4)", tag="monitoring",
        ok={"200": {"description": "The metrics",
                    "content": content(STRING, "text/plain; version=0.0.4")},
            "404": {"description": "Metrics are off (metrics: false)",
                    "content": content(STRING, "text/plain")}})),
    "/v1/models": get_and_head(operation("openaiModels", "OpenAI model list", tag="openai",
                                         ok=json_ok(ref("ModelList")))),
    "/v1/models/{model}": get_and_head(operation(
        "openaiModel", "One OpenAI model object", tag="openai", ok=json_ok(ref("Model")),
        parameters=[path_parameter("model", "A model name; it may hold '/' and ':'")],
        errors=OPENAI_ERRORS)),
}


def document() -> dict[str, Any]:
    """A fresh copy of the whole document: callers (tests, fuzzers) may change theirs."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {"title": "llmd", "version": llmd.__version__,
                 "description": "Ollama-compatible REST API, plus OpenAI- and Anthropic-compatible "
                                "routes under /v1."},
        "servers": [{"url": "http://127.0.0.1:11434"}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    })


_SERVED = document()


async def openapi_json(request: Request) -> Response:
    return OllamaJSONResponse(_SERVED)


routes: list[BaseRoute] = [Route("/api/openapi.json", openapi_json, methods=["GET"])]
