"""Push SmolLM2 to a real docker-registry and pull it back into a second store."""

from __future__ import annotations

import asyncio
import filecmp
import hashlib

import pytest
from llmd.errors import RegistryAuthError, RegistryError
from llmd.store import ModelName, Store
from llmd.store.manifest import SYSTEM
from llmd.store.registry import Credentials
from llmd.store.transfer import Progress, Target, Transfers
from registry.conftest import collect, publish_raw
from registry.registry_server import Registry, run_proxy


async def test_push_then_pull_gives_byte_identical_blobs(
    registry: Registry, source_store: Store, pushed: tuple[str, list[Progress]], tmp_path
) -> None:
    name, push_progress = pushed
    statuses = [p.status for p in push_progress]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]

    dest = Store(tmp_path / "models")
    progress = await collect(Transfers(dest).pull(Target.parse(name, insecure=True)))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]

    model = await dest.get(ModelName.parse(name))
    original = await source_store.get(ModelName.parse(name))
    assert model.digest == original.digest
    assert filecmp.cmp(model.model_path, original.model_path, shallow=False)


async def test_pull_by_digest_fetches_that_manifest_and_stores_it_under_the_tag(
    registry: Registry, source_store: Store, pushed: tuple[str, list[Progress]], tmp_path
) -> None:
    name, _ = pushed
    original = await source_store.get(ModelName.parse(name))
    dest = Store(tmp_path / "models")
    base = name.rsplit(":", 1)[0]
    await collect(Transfers(dest).pull(Target.parse(f"{base}:pinned@sha256:{original.digest}", insecure=True)))
    model = await dest.get(ModelName.parse(f"{base}:pinned"))
    assert model.digest == original.digest


async def test_pulling_an_unknown_model_fails_with_ollamas_message(registry: Registry, tmp_path) -> None:
    dest = Store(tmp_path / "models")
    with pytest.raises(RegistryError, match="^pull model manifest: file does not exist$"):
        await collect(Transfers(dest).pull(Target.parse(f"{registry.host}/library/nope:1", insecure=True)))
    assert await dest.list() == []


async def test_a_plain_http_name_without_insecure_is_refused(registry: Registry, tmp_path) -> None:
    dest = Store(tmp_path / "models")
    with pytest.raises(RegistryError, match="^insecure protocol http$"):
        await collect(Transfers(dest).pull(Target.parse(f"http://{registry.host}/library/x:1")))


async def test_a_tampered_blob_on_the_registry_fails_the_pull_and_writes_nothing(
    registry: Registry, tmp_path
) -> None:
    layer = b"a system prompt that will be tampered with\n" * 100
    _, digests = await publish_raw(registry.host, "test/tampered", "v1", {SYSTEM: layer})
    data = registry.blob_data(digests[0])
    data.write_bytes(layer.replace(b"tampered", b"TAMPERED"))  # same size, other bytes

    dest = Store(tmp_path / "models")
    with pytest.raises(RegistryError, match="digest mismatch, file must be downloaded again"):
        await collect(Transfers(dest).pull(Target.parse(f"{registry.host}/test/tampered:v1", insecure=True)))
    assert await dest.list() == []
    assert not dest.has_blob(digests[0])
    assert [p.name for p in (tmp_path / "models" / "blobs").iterdir() if digests[0][7:] in p.name] == []


async def test_a_present_blob_is_not_downloaded_again(registry: Registry, tmp_path) -> None:
    _, digests = await publish_raw(registry.host, "test/present", "v1", {SYSTEM: b"present layer"})
    dest = Store(tmp_path / "models")
    target = Target.parse(f"{registry.host}/test/present:v1", insecure=True)
    await collect(Transfers(dest).pull(target))
    before = dest.blob_path(digests[0]).stat().st_ino
    again = await collect(Transfers(dest).pull(target))
    assert dest.blob_path(digests[0]).stat().st_ino == before
    line = next(p for p in again if p.digest == digests[0])
    assert line.to_json() == {"status": f"pulling {digests[0][7:19]}", "digest": digests[0],
                              "total": len(b"present layer"), "completed": len(b"present layer")}


async def test_verify_finds_a_corrupted_blob_in_the_store(registry: Registry, tmp_path) -> None:
    _, digests = await publish_raw(registry.host, "test/verify", "v1", {SYSTEM: b"soon corrupt"})
    dest = Store(tmp_path / "models")
    await collect(Transfers(dest).pull(Target.parse(f"{registry.host}/test/verify:v1", insecure=True)))
    assert all(c.ok for c in await collect(dest.check_blobs(None)))
    dest.blob_path(digests[0]).write_bytes(b"soon CORRUPT")
    checks = {c.digest: c.ok for c in await collect(
        dest.check_blobs(ModelName.parse(f"{registry.host}/test/verify:v1")))}
    assert checks == {digests[0]: False, digests[1]: True}


async def test_wrong_credentials_get_a_clear_401_and_right_ones_work(
    private_registry: Registry, tmp_path
) -> None:
    alice = Credentials("alice", "s3cret")
    await publish_raw(private_registry.host, "team/private", "v1", {SYSTEM: b"secret layer"}, alice)
    dest = Store(tmp_path / "models")
    name = f"{private_registry.host}/team/private:v1"
    for credentials in (None, Credentials("alice", "wrong")):
        with pytest.raises(RegistryAuthError, match="^unauthorized: authentication required$"):
            await collect(Transfers(dest).pull(Target.parse(name, insecure=True, credentials=credentials)))
    progress = await collect(Transfers(dest).pull(Target.parse(name, insecure=True, credentials=alice)))
    assert progress[-1].status == "success"


async def test_a_bearer_challenge_is_answered_with_a_token_from_the_realm(
    registry: Registry, tmp_path
) -> None:
    _, digests = await publish_raw(registry.host, "test/bearer", "v1", {SYSTEM: b"behind a token"})
    dest = Store(tmp_path / "models")
    with run_proxy(registry.host) as proxy:
        proxy.token, proxy.token_basic = "t0ken", Credentials("bob", "pw").basic()
        name = f"{proxy.host}/test/bearer:v1"
        with pytest.raises(RegistryAuthError, match="^unauthorized: "):
            await collect(Transfers(dest).pull(Target.parse(name, insecure=True)))
        progress = await collect(Transfers(dest).pull(
            Target.parse(name, insecure=True, credentials=Credentials("bob", "pw"))))
        assert progress[-1].status == "success"
        assert proxy.token_requests[-1] == {"service": "llmd-test", "scope": "repository:test/bearer:pull"}
    assert dest.has_blob(digests[0])


async def test_pulling_a_new_version_prunes_the_blobs_only_the_old_one_used(
    registry: Registry, tmp_path
) -> None:
    _, old = await publish_raw(registry.host, "test/moving", "latest", {SYSTEM: b"version one"})
    dest = Store(tmp_path / "models")
    target = Target.parse(f"{registry.host}/test/moving:latest", insecure=True)
    await collect(Transfers(dest).pull(target))
    assert dest.has_blob(old[0])
    _, new = await publish_raw(registry.host, "test/moving", "latest", {SYSTEM: b"version two"})
    await collect(Transfers(dest).pull(target))
    assert dest.has_blob(new[0])
    assert not dest.has_blob(old[0])  # as a create over an existing name does


async def test_a_pull_writes_its_manifest_only_under_the_store_lock(registry: Registry, tmp_path) -> None:
    # The lock orders manifest changes with the reference counting that decides what to prune:
    # a pull writing beside a delete could have its fresh blobs pruned from under it.
    await publish_raw(registry.host, "test/locked", "v1", {SYSTEM: b"locked layer"})
    dest = Store(tmp_path / "models")
    name = ModelName.parse(f"{registry.host}/test/locked:v1")
    pull = asyncio.create_task(collect(Transfers(dest).pull(Target.parse(str(name), insecure=True))))
    async with dest._lock:  # what a create, copy or delete holds while it changes manifests
        async with asyncio.timeout(60):
            while not dest.has_blob(digest_of(b"locked layer")):
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
        assert not name.manifest_path(dest.root).exists()
    async with asyncio.timeout(60):
        await pull
    assert name.manifest_path(dest.root).exists()


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
