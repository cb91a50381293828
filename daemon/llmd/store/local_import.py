"""``llmd create NAME -f Modelfile``: the same create as /api/create, with local files imported
straight into the store instead of uploaded through /api/blobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmd.store.modelfile import parse_modelfile, resolve_sources
from llmd.store.models import CreateRequest
from llmd.store.names import ModelName
from llmd.store.store import Store


async def create_from_modelfile(
    store: Store, name: str | ModelName, modelfile_path: Path, progress: Callable[[str], None]
) -> None:
    """Parse the Modelfile, import its local files, create the model; progress gets status lines.

    Raises ModelfileError, InvalidModelName, InvalidModelFile... (LlmdError) and OSError for an
    unreadable Modelfile.
    """
    model_name = name if isinstance(name, ModelName) else ModelName.parse(name)
    path = Path(modelfile_path).expanduser()
    modelfile = parse_modelfile(path.read_text(encoding="utf-8"))
    sources = resolve_sources(modelfile, path.resolve().parent)
    progress("gathering model components")
    files: dict[str, str] = {}
    if sources.model_file is not None:
        digest = await store.import_file(sources.model_file)
        progress(f"copying file {digest} 100%")
        files[sources.model_file.name] = digest
    adapters: dict[str, str] = {}
    for adapter in sources.adapter_files:
        digest = await store.import_file(adapter)
        progress(f"copying file {digest} 100%")
        adapters[adapter.name] = digest
    request = CreateRequest(
        name=model_name,
        from_=sources.base,
        files=files,
        adapters=adapters,
        template=modelfile.template,
        system=modelfile.system,
        license=modelfile.license or None,
        parameters=modelfile.parameters or None,
        messages=modelfile.messages or None,
    )
    async for status in store.create(request):
        progress(status if isinstance(status, str) else status.status)
