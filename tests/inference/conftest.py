"""One live llmd for the inference tests, holding smollm2:135m and a tool-calling variant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import LiveServer, create_smollm2, live_server

MODEL = "smollm2:135m"
TOOLS_MODEL = "smollm2-tools:135m"

# A Go template that offers tools and expects a bare JSON call back, as many Ollama templates do.
TOOLS_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{- if and (eq .Role \"user\") $.Tools }}\nTools: {{ range $.Tools }}{{ json . }}{{ end }}\n"
    "Answer with a JSON tool call.\n{{ end }}"
    "{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("inference-server")) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        yield live
