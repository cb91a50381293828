"""The steps of /api/create (Ollama's server/create.go): layers from a base model or a GGUF blob,
then the template/system/license/params/messages layers that replace the base's.

``build_layers`` is a blocking generator: it yields Ollama's status lines (and a quantization's
progress) as it goes and returns the new Manifest (the Store drives it from a thread and writes
the manifest last).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator

from llmd.errors import BlobNotFound, InvalidModelFile, InvalidRequest
from llmd.runner.options import check_parameters
from llmd.store import manifest as mf
from llmd.store.blobs import Blobs
from llmd.store.gguf import GGUFInfo, read_gguf_info
from llmd.store.manifest import Layer, Manifest
from llmd.store.models import NO_TEMPLATE, CreateRequest, lacks_template
from llmd.store.progress import Progress
from llmd.store.quantize import check_source, quantize

log = logging.getLogger(__name__)

TemplateCheck = Callable[[str], None]
Status = str | Progress

# Layers that a create's own field replaces wholesale (the legacy prompt layer is a template).
_REPLACED_BY = {
    "template": (mf.TEMPLATE, mf.PROMPT),
    "system": (mf.SYSTEM,),
    "license": (mf.LICENSE,),
    "messages": (mf.MESSAGES,),
}


def gguf_config(info: GGUFInfo) -> dict[str, object]:
    """The config blob of a GGUF model, as Ollama writes it (types/model/config.go)."""
    return {
        "model_format": "gguf",
        "model_family": info.architecture,
        "model_families": [info.architecture],
        "model_type": info.parameter_size,
        "file_type": info.file_type,
        "architecture": "amd64",
        "os": "linux",
    }


def _need_blob(blobs: Blobs, digest: str) -> None:
    if not blobs.has(digest):
        raise BlobNotFound(f'blob "{digest}" not found')


def _read_gguf(blobs: Blobs, digest: str, what: str) -> GGUFInfo:
    _need_blob(blobs, digest)
    try:
        return read_gguf_info(blobs.path(digest))
    except InvalidModelFile as exc:
        raise InvalidModelFile(f"{what}: {exc.message}") from None


def _from_files(req: CreateRequest, blobs: Blobs) -> Generator[Status, None, tuple[list[Layer], dict[str, object]]]:
    yield "parsing GGUF"
    model: tuple[Layer, GGUFInfo] | None = None
    projectors: list[Layer] = []
    for name, digest in req.files.items():
        info = _read_gguf(blobs, digest, name)
        if info.architecture == "clip":  # a vision projector (mmproj) next to the weights
            projectors.append(Layer(mf.PROJECTOR, digest, blobs.size(digest)))
        elif model is not None:
            raise InvalidRequest("more than one model file given; split GGUF files are not supported")
        else:
            model = (Layer(mf.MODEL, digest, blobs.size(digest)), info)
    if model is None:
        raise InvalidRequest("no model file given, only projectors")
    config = gguf_config(model[1])
    if projectors:
        config["model_families"] = [model[1].architecture, "clip"]
    return [model[0], *projectors], config


def _lacks_template(blobs: Blobs, layers: list[Layer]) -> bool:
    if any(x.media_type in _REPLACED_BY["template"] for x in layers):
        return False
    model = next((x for x in layers if x.media_type == mf.MODEL), None)
    return model is not None and lacks_template(None, _read_gguf(blobs, model.digest, "model"))


def _quantized(
    target: str, blobs: Blobs, layers: list[Layer], config: dict[str, object], created: set[str]
) -> Generator[Status, None, list[Layer]]:
    """The layers with the model layer requantized to ``target``; ``config`` says so too."""
    index, model = next((i, x) for i, x in enumerate(layers) if x.media_type == mf.MODEL)
    source_type = _read_gguf(blobs, model.digest, "model").file_type
    check_source(source_type)
    digest = yield from quantize(blobs, model.digest, source_type, target)
    created.add(digest)
    config["file_type"] = target
    new = Layer(mf.MODEL, digest, blobs.size(digest))  # no longer the base's weights: no `from`
    return [*layers[:index], new, *layers[index + 1:]]


def _text_layer(blobs: Blobs, media_type: str, text: str) -> tuple[Layer, bool]:
    data = text.encode("utf-8")
    digest, created = blobs.write_bytes(data)
    return Layer(media_type, digest, len(data)), created


def build_layers(
    req: CreateRequest,
    blobs: Blobs,
    base: tuple[Manifest, dict[str, object], str] | None,
    template_check: TemplateCheck | None,
) -> Generator[Status, None, Manifest]:
    """Yield status lines; return the manifest to write. ``base`` is (manifest, config, short name)."""
    if base is not None:
        manifest, config, base_name = base
        layers = [
            Layer(x.media_type, x.digest, x.size, x.from_ or base_name, x.name)
            if x.media_type == mf.MODEL else x
            for x in manifest.layers
        ]
        config = dict(config)
        for layer in layers:
            _need_blob(blobs, layer.digest)
    elif req.files:
        layers, config = yield from _from_files(req, blobs)
    else:
        raise InvalidRequest("neither 'from' or 'files' was specified")

    created: set[str] = set()
    if req.quantize is not None:
        layers = yield from _quantized(req.quantize, blobs, layers, config, created)

    def replace(media_types: tuple[str, ...], new: list[Layer]) -> None:
        nonlocal layers
        layers = [x for x in layers if x.media_type not in media_types] + new

    if req.adapters:
        adapters = []
        for name, digest in req.adapters.items():
            _read_gguf(blobs, digest, name)
            adapters.append(Layer(mf.ADAPTER, digest, blobs.size(digest)))
        replace((mf.ADAPTER,), adapters)
    if req.template is not None:
        if template_check is not None:
            template_check(req.template)  # raises TemplateError("template error: ...")
        layer, new = _text_layer(blobs, mf.TEMPLATE, req.template)
        created.update([layer.digest] if new else [])
        replace(_REPLACED_BY["template"], [layer])
    if req.system is not None:
        layer, new = _text_layer(blobs, mf.SYSTEM, req.system)
        created.update([layer.digest] if new else [])
        replace(_REPLACED_BY["system"], [layer])
    if req.license is not None:
        licenses = []
        for text in req.license:
            layer, new = _text_layer(blobs, mf.LICENSE, text)
            created.update([layer.digest] if new else [])
            licenses.append(layer)
        replace(_REPLACED_BY["license"], licenses)
    if req.parameters is not None:
        params: dict[str, object] = {}
        old = next((x for x in layers if x.media_type == mf.PARAMS), None)
        if old is not None:
            try:
                params = json.loads(blobs.path(old.digest).read_bytes())
            except (OSError, ValueError):
                log.warning("ignoring an unreadable params layer", extra={"digest": old.digest})
        params.update(check_parameters(req.parameters))  # new keys win, old ones stay
        if params:
            text = json.dumps(params, separators=(",", ":"), ensure_ascii=False)
            layer, new = _text_layer(blobs, mf.PARAMS, text)
            created.update([layer.digest] if new else [])
            replace((mf.PARAMS,), [layer])
    if req.messages is not None:
        for m in req.messages:
            if m.role not in ("system", "user", "assistant"):
                raise InvalidRequest('role must be one of "system", "user", or "assistant"')
        text = json.dumps([{"role": m.role, "content": m.content} for m in req.messages],
                          separators=(",", ":"), ensure_ascii=False)
        layer, new = _text_layer(blobs, mf.MESSAGES, text)
        created.update([layer.digest] if new else [])
        replace(_REPLACED_BY["messages"], [layer] if req.messages else [])

    for layer in layers:
        verb = "creating new" if layer.digest in created else "using existing"
        yield f"{verb} layer {layer.digest}"
    if _lacks_template(blobs, layers):
        yield NO_TEMPLATE

    config["rootfs"] = {"type": "layers", "diff_ids": [x.digest for x in layers]}
    config_data = json.dumps(config, separators=(",", ":"), ensure_ascii=False).encode()
    config_digest, _ = blobs.write_bytes(config_data)
    return Manifest(Layer(mf.CONFIG_MEDIA_TYPE, config_digest, len(config_data)), tuple(layers))
