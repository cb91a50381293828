"""A store laid out by Ollama itself lists and resolves; leftovers of crashed writers are ignored."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from llmd.store import Message, ModelName, Store


def _blob(root: Path, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (root / "blobs" / digest.replace(":", "-")).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _ollama_model(root: Path, smol_digest: str, name: Path, extra: list[tuple[str, bytes]]) -> bytes:
    """Write a manifest the way Ollama's WriteManifest does (compact Go JSON, 0644 file)."""
    weights = root / "blobs" / smol_digest.replace(":", "-")
    layers = [{"mediaType": "application/vnd.ollama.image.model", "digest": smol_digest,
               "size": weights.stat().st_size}]
    for kind, data in extra:
        layers.append({"mediaType": f"application/vnd.ollama.image.{kind}", **_blob(root, data)})
    config = json.dumps({
        "model_format": "gguf", "model_family": "llama", "model_families": ["llama"],
        "model_type": "134.52M", "file_type": "Q4_1", "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
    }, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **_blob(root, config)},
        "layers": layers,
    }, separators=(",", ":")).encode()
    path = root / "manifests" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(manifest)
    return manifest


async def test_an_ollama_store_lists_and_resolves(root: Path, smol_digest: str) -> None:
    library = _ollama_model(root, smol_digest, Path("registry.ollama.ai/library/smollm2/135m"), [
        ("template", b"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"),
        ("license", b"Apache 2.0"),
        ("params", b'{"stop":["<|im_start|>","<|im_end|>"],"temperature":0.2}'),
        ("messages", b'[{"role":"user","content":"hi"}]'),
    ])
    os.utime(root / "manifests/registry.ollama.ai/library/smollm2/135m", (1_700_000_000, 1_700_000_000))
    _ollama_model(root, smol_digest, Path("hf.co/bartowski/SmolLM2-GGUF/Q4_1"), [
        ("prompt", b"{{ .Prompt }}"),  # the legacy name of the template layer
    ])
    # a model llmd cannot run (no GGUF layer) and a half-written file must not hide the others
    (root / "manifests/registry.ollama.ai/library/other").mkdir(parents=True)
    (root / "manifests/registry.ollama.ai/library/other/latest").write_text("{not json")

    store = Store(root)
    models = await store.list()
    assert [m.name.short for m in models] == ["hf.co/bartowski/SmolLM2-GGUF:Q4_1", "smollm2:135m"]
    smol = await store.get(ModelName.parse("smollm2:135m"))
    assert smol.digest == hashlib.sha256(library).hexdigest()
    assert smol.parameters == {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.2}
    assert smol.license == ("Apache 2.0",)
    assert smol.messages == (Message("user", "hi"),)
    assert smol.template is not None and smol.template.startswith("{{ if .System }}")
    assert smol.modified_at.timestamp() == 1_700_000_000
    assert smol.details()["parameter_size"] == "134.52M"
    hf = await store.get(ModelName.parse("HF.CO/bartowski/smollm2-gguf:q4_1"))
    assert hf.template == "{{ .Prompt }}"


def _dead_pid() -> str:
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()


async def test_temp_files_of_dead_writers_are_ignored_and_cleaned_at_startup(
    root: Path, smol_digest: str
) -> None:
    _ollama_model(root, smol_digest, Path("registry.ollama.ai/library/smollm2/135m"), [])
    dead = _dead_pid()
    manifests = root / "manifests/registry.ollama.ai/library/smollm2"
    stale = [root / "blobs" / f".tmp-{dead}-aaaa", manifests / f".tmp-{dead}-bbbb"]
    live = root / "blobs" / f".tmp-{os.getpid()}-cccc"
    for path in [*stale, live]:
        path.write_bytes(b"half written")

    store = Store(root)
    assert [m.name.short for m in await store.list()] == ["smollm2:135m"]
    assert not any(p.exists() for p in stale)
    assert live.exists()  # a writer that is still running keeps its temp file
