"""The store's lifecycle on the real SmolLM2 GGUF: create, list, show data, copy, delete, prune."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from llmd.errors import (
    BlobNotFound,
    InvalidModelFile,
    InvalidOption,
    InvalidRequest,
    ModelfileError,
    ModelNotFound,
    TemplateError,
)
from llmd.store import CreateRequest, Message, ModelName, Store, create_from_modelfile


def N(text: str) -> ModelName:
    return ModelName.parse(text)


async def _create(store: Store, req: CreateRequest) -> list[str]:
    return [status async for status in store.create(req)]


def _blob_names(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").iterdir()}


def _layer(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


async def test_creating_from_a_gguf_blob_streams_ollamas_statuses(store: Store, smol_digest: str) -> None:
    statuses = await _create(
        store,
        CreateRequest(N("smol:135m"), files={"model.gguf": smol_digest}, system="Be brief.",
                      parameters={"temperature": 0.2}),
    )
    assert statuses == [
        "parsing GGUF",
        f"using existing layer {smol_digest}",
        f"creating new layer {_layer('Be brief.')}",
        f"creating new layer {_layer(json.dumps({'temperature': 0.2}, separators=(',', ':')))}",
        "writing manifest",
        "success",
    ]


async def test_a_created_model_lists_and_shows_everything_the_api_needs(
    store: Store, smol_digest: str, root: Path
) -> None:
    req = CreateRequest(
        N("smol:135m"),
        files={"model.gguf": smol_digest},
        template="{{ .Prompt }}",
        system="Be brief.",
        license=("MIT", "Apache-2.0"),
        parameters={"temperature": "0.2", "stop": ["<|im_end|>"]},
        messages=(Message("user", "hi"), Message("assistant", "hello")),
    )
    await _create(store, req)
    [listed] = await store.list()
    model = await store.get(N("SMOL:135M"))  # lookups ignore case
    assert listed == model
    manifest = root / "manifests/registry.ollama.ai/library/smol/135m"
    assert model.name.short == "smol:135m"
    assert model.digest == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert model.modified_at == datetime.fromtimestamp(manifest.stat().st_mtime, UTC)
    assert model.model_path == store.blob_path(smol_digest)
    assert model.model_digest == smol_digest
    assert model.template == "{{ .Prompt }}" and model.system == "Be brief."
    assert model.license == ("MIT", "Apache-2.0")
    assert model.parameters == {"temperature": 0.2, "stop": ["<|im_end|>"]}
    assert model.messages == (Message("user", "hi"), Message("assistant", "hello"))
    assert model.capabilities == ("completion",)
    assert model.details() == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "134.52M",
        "quantization_level": "Q4_1",
    }
    body = json.loads(manifest.read_bytes())
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert body["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert [x["mediaType"].rsplit(".", 1)[1] for x in body["layers"]] == [
        "model", "template", "system", "license", "license", "params", "messages",
    ]
    assert model.size == body["config"]["size"] + sum(x["size"] for x in body["layers"])
    config = json.loads(store.blob_path(body["config"]["digest"]).read_bytes())
    assert config["model_format"] == "gguf" and config["model_type"] == "134.52M"
    assert config["file_type"] == "Q4_1" and config["os"] == "linux"


async def test_a_model_built_from_another_replaces_layers_and_merges_parameters(
    store: Store, smol_digest: str
) -> None:
    await _create(store, CreateRequest(N("base"), files={"m.gguf": smol_digest}, system="old",
                                       parameters={"temperature": 0.2, "top_k": 10}))
    statuses = await _create(store, CreateRequest(N("derived"), from_=N("BASE"), system="new",
                                                  parameters={"top_k": 20}))
    assert "parsing GGUF" not in statuses and statuses[-2:] == ["writing manifest", "success"]
    derived = await store.get(N("derived"))
    assert derived.system == "new"
    assert derived.parameters == {"temperature": 0.2, "top_k": 20}
    assert derived.parent_model == "base:latest"
    assert (await store.get(N("base"))).system == "old"


async def test_deleting_one_of_two_models_sharing_a_blob_keeps_the_blob(
    store: Store, smol_digest: str, root: Path
) -> None:
    await _create(store, CreateRequest(N("a"), files={"m.gguf": smol_digest}, system="only a"))
    await store.copy(N("a"), N("me/b:v1"))
    assert [m.name.short for m in await store.list()] == ["me/b:v1", "a:latest"]
    await store.delete(N("A"))
    assert [m.name.short for m in await store.list()] == ["me/b:v1"]
    assert store.has_blob(smol_digest) and store.has_blob(_layer("only a"))

    await store.delete(N("me/b:v1"))
    assert await store.list() == []
    assert _blob_names(root) == set()
    assert list((root / "manifests").iterdir()) == []  # empty directories go too


async def test_replacing_a_model_prunes_the_layers_only_it_used(store: Store, smol_digest: str) -> None:
    await _create(store, CreateRequest(N("m"), files={"m.gguf": smol_digest}, system="first"))
    await _create(store, CreateRequest(N("m"), files={"m.gguf": smol_digest}, system="second"))
    assert not store.has_blob(_layer("first"))
    assert (await store.get(N("m"))).system == "second"


async def test_noprune_keeps_the_replaced_layers(root: Path, smol_digest: str) -> None:
    store = Store(root, noprune=True)
    await _create(store, CreateRequest(N("m"), files={"m.gguf": smol_digest}, system="first"))
    await _create(store, CreateRequest(N("m"), files={"m.gguf": smol_digest}, system="second"))
    assert store.has_blob(_layer("first"))


async def test_two_concurrent_creates_sharing_a_blob_both_succeed(store: Store, smol_digest: str) -> None:
    reqs = [CreateRequest(N(f"twin{i}"), files={"m.gguf": smol_digest}, system=f"twin {i}") for i in range(2)]
    results = await asyncio.gather(*(_create(store, r) for r in reqs))
    assert all(r[-1] == "success" for r in results)
    assert {m.name.short for m in await store.list()} == {"twin0:latest", "twin1:latest"}
    assert await store.verify(None) == []


CREATE_IN_A_PROCESS = """
import asyncio, sys
from pathlib import Path
from llmd.store import CreateRequest, ModelName, Store
async def main():
    req = CreateRequest(ModelName.parse(sys.argv[2]), files={"m.gguf": sys.argv[3]}, system=sys.argv[2])
    async for _ in Store(Path(sys.argv[1])).create(req):
        pass
asyncio.run(main())
"""


async def test_two_processes_creating_from_one_blob_at_once_both_succeed(
    root: Path, smol_digest: str
) -> None:
    def run_both() -> list[int]:
        children = [
            subprocess.Popen([sys.executable, "-c", CREATE_IN_A_PROCESS, str(root), name, smol_digest])
            for name in ("left", "right")
        ]
        return [child.wait() for child in children]

    assert await asyncio.to_thread(run_both) == [0, 0]
    store = Store(root)
    assert {m.name.short for m in await store.list()} == {"left:latest", "right:latest"}
    assert await store.verify(None) == []


@pytest.mark.parametrize("kind", ["truncated", "random"])
async def test_a_broken_weights_file_is_refused_and_no_model_is_left(
    store: Store, gguf_path: Path, kind: str
) -> None:
    with gguf_path.open("rb") as f:
        data = f.read(1_000_000) if kind == "truncated" else os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def chunks():  # type: ignore[no-untyped-def]
        yield data

    await store.write_blob(digest, chunks())
    with pytest.raises(InvalidModelFile, match="model.gguf: "):
        await _create(store, CreateRequest(N("broken"), files={"model.gguf": digest}))
    assert await store.list() == []


GOOD_FILES = object()  # stands for {"m.gguf": <the SmolLM2 digest>}


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"files": {"m.gguf": "sha256:" + "0" * 64}}, BlobNotFound, "not found"),
        ({}, InvalidRequest, "neither 'from' or 'files' was specified"),
        ({"from_": N("nowhere")}, ModelNotFound, "model 'nowhere:latest' not found"),
        ({"files": GOOD_FILES, "parameters": {"bogus": 1}}, InvalidOption, "unknown parameter 'bogus'"),
        ({"files": GOOD_FILES, "messages": (Message("tool", "x"),)}, InvalidRequest, "role must be one of"),
    ],
)
async def test_bad_creates_fail_cleanly(
    store: Store, smol_digest: str, fields: dict[str, object], error: type[Exception], message: str
) -> None:
    fields = {k: {"m.gguf": smol_digest} if v is GOOD_FILES else v for k, v in fields.items()}
    with pytest.raises(error, match=message):
        await _create(store, CreateRequest(N("bad"), **fields))  # type: ignore[arg-type]
    assert await store.list() == []


async def test_the_template_hook_checks_templates_before_anything_is_written(root: Path, smol_digest: str) -> None:
    seen: list[str] = []

    def check(template: str) -> None:
        seen.append(template)
        if "{{ end" in template:
            raise TemplateError("unexpected {{end}}")

    store = Store(root, template_check=check)
    with pytest.raises(TemplateError, match="^template error: unexpected"):
        await _create(store, CreateRequest(N("t"), files={"m.gguf": smol_digest}, template="{{ end }}"))
    assert await store.list() == []
    await _create(store, CreateRequest(N("t"), files={"m.gguf": smol_digest}, template="{{ .Prompt }}"))
    assert seen == ["{{ end }}", "{{ .Prompt }}"]


async def test_unknown_models_are_not_found(store: Store) -> None:
    with pytest.raises(ModelNotFound, match="model 'ghost:latest' not found"):
        await store.get(N("ghost"))
    with pytest.raises(ModelNotFound):
        await store.delete(N("ghost"))
    with pytest.raises(ModelNotFound):
        await store.copy(N("ghost"), N("other"))


async def test_a_modelfile_with_a_local_gguf_is_imported_and_created(
    tmp_path: Path, gguf_path: Path, smol_digest: str
) -> None:
    modelfile = tmp_path / "dir" / "Modelfile"
    modelfile.parent.mkdir()
    os.symlink(gguf_path, tmp_path / "w.gguf")
    modelfile.write_text("FROM ../w.gguf\nPARAMETER temperature 0.2\nSYSTEM hi\n")
    store = Store(tmp_path / "models")
    seen: list[str] = []
    await create_from_modelfile(store, "smollm2:135m", modelfile, seen.append)
    assert f"using existing layer {smol_digest}" in seen and seen[-1] == "success"
    model = await store.get(N("smollm2:135m"))
    assert model.parameters == {"temperature": 0.2} and model.system == "hi"


async def test_a_modelfile_with_an_unknown_parameter_names_the_line(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM smollm2\n# tuning\nPARAMETER flavour sweet\n")
    with pytest.raises(ModelfileError, match="^line 3: unknown parameter 'flavour'$"):
        await create_from_modelfile(Store(tmp_path / "models"), "x", modelfile, print)
