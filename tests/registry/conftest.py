"""Fixtures: one docker-registry for the session with SmolLM2 pushed to it, and stores around it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from llmd.store import ModelName, Store, create_from_modelfile
from llmd.store.manifest import CONFIG_MEDIA_TYPE, Layer, Manifest
from llmd.store.registry import DOCKER_MANIFEST, Credentials, RegistryClient, Repository
from llmd.store.transfer import Progress, Target, Transfers
from registry.registry_server import Registry, run_registry

SMOLLM2 = "smollm2:135m"


async def collect(progress: object) -> list[Progress]:
    return [p async for p in progress]  # type: ignore[attr-defined]


def smollm2_store(root: Path, gguf_path: Path) -> Store:
    """A store holding smollm2:135m, created from the real GGUF (the blob is hard-linked in)."""
    modelfile = root.parent / f"{root.name}.Modelfile"
    modelfile.write_text(f"FROM {gguf_path}\nSYSTEM You are a registry test.\n")
    store = Store(root)
    asyncio.run(create_from_modelfile(store, SMOLLM2, modelfile, lambda _s: None))
    return store


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry behind htpasswd (bcrypt) Basic auth; alice's password is s3cret."""
    with run_registry(tmp_path_factory.mktemp("private"), users={"alice": "s3cret"}) as reg:
        yield reg


@pytest.fixture(scope="session")
def source_store(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Store:
    return smollm2_store(tmp_path_factory.mktemp("source") / "models", gguf_path)


@pytest.fixture(scope="session")
def pushed(registry: Registry, source_store: Store) -> tuple[str, list[Progress]]:
    """smollm2 pushed once to the session registry; returns its name there and the progress."""
    name = f"{registry.host}/library/smollm2:135m"

    async def push() -> list[Progress]:
        # as with ollama: copy to the registry's name, then push that name
        await source_store.copy(ModelName.parse(SMOLLM2), ModelName.parse(name))
        return await collect(Transfers(source_store).push(Target.parse(name, insecure=True)))

    return name, asyncio.run(push())


async def publish_raw(host: str, repo: str, tag: str, blobs: dict[str, bytes],
                      credentials: Credentials | None = None) -> tuple[str, list[str]]:
    """Push a synthetic model straight to a registry: a config and the given layers.

    Returns the manifest digest and the layer digests (config last). Pull doesn't read GGUF,
    so tiny fake layers exercise it without the real model.
    """
    config = json.dumps({"model_format": "gguf", "os": "linux"}).encode()
    layers = []
    client = RegistryClient(Repository(f"http://{host}", repo), credentials=credentials, push=True)
    async with client:
        async def put(data: bytes) -> str:
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}"

            async def chunks() -> object:
                yield data

            if not await client.has_blob(digest):
                await client.upload_blob(digest, len(data), chunks)  # type: ignore[arg-type]
            return digest

        for media_type, data in blobs.items():
            layers.append(Layer(media_type, await put(data), len(data)))
        config_layer = Layer(CONFIG_MEDIA_TYPE, await put(config), len(config))
        manifest = Manifest(config_layer, tuple(layers)).to_bytes()
        await client.put_manifest(tag, manifest, DOCKER_MANIFEST)
    return (f"sha256:{hashlib.sha256(manifest).hexdigest()}",
            [layer.digest for layer in layers] + [config_layer.digest])
