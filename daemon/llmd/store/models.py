"""Resolved models: a manifest read with its small layers, the GGUF summary and what /api/create asks.

``read_model`` turns a manifest file into a Model; it is blocking (the Store calls it in a thread).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from llmd.store import manifest as mf
from llmd.store.blobs import Blobs
from llmd.store.gguf import GGUFInfo
from llmd.store.manifest import Manifest
from llmd.store.names import ModelName

# How a template shows that a model can do more than complete text: Ollama's Go-template
# variables, or what Hugging Face Jinja chat templates use for the same.
_TOOLS = re.compile(r"\.Tools\b|\btools\b")
_INSERT = re.compile(r"\.Suffix\b|\bsuffix\b")
_THINKING = re.compile(r"\.Thinking\b|\bthinking\b|\breasoning_content\b|\benable_thinking\b")

NO_TEMPLATE = (
    "warning: no chat template (the GGUF has no tokenizer.chat_template and the Modelfile no "
    "TEMPLATE): chat sends the bare message text; add a TEMPLATE to fix it"
)


def lacks_template(template: str | None, info: GGUFInfo) -> bool:
    """A chat model that chat would prompt with bare text: no TEMPLATE, no GGUF chat template."""
    return template is None and info.chat_template is None and not info.pooling


@dataclass(frozen=True, slots=True)
class Message:
    """A MESSAGE of a Modelfile, kept in the model's messages layer."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Model:
    """A resolved manifest: everything the API and the scheduler need."""

    name: ModelName
    digest: str  # sha256 hex of the manifest bytes, no prefix (what /api/tags shows)
    size: int
    modified_at: datetime
    model_path: Path
    model_digest: str  # "sha256:<hex>" of the GGUF: the scheduler's identity for the weights
    adapters: tuple[Path, ...]
    projectors: tuple[Path, ...]
    template: str | None
    system: str | None
    license: tuple[str, ...]
    parameters: dict[str, object]
    messages: tuple[Message, ...]
    config: dict[str, object]
    info: GGUFInfo
    parent_model: str = ""

    @property
    def capabilities(self) -> tuple[str, ...]:
        """Ollama's capability names, from the GGUF metadata and the template."""
        caps = ["embedding"] if self.info.pooling else ["completion"]
        template = (self.template or "") + "\n" + (self.info.chat_template or "")
        if not self.info.pooling:
            if _TOOLS.search(template):
                caps.append("tools")
            if _INSERT.search(template):
                caps.append("insert")
            if _THINKING.search(template):
                caps.append("thinking")
        # A projector layer alone does not make llmd see: the runner does not feed images to
        # the model, so "vision" is never advertised and chat.check_capabilities refuses images.
        return tuple(caps)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What /api/show flags about a model that works, but not as its author meant."""
        return (NO_TEMPLATE,) if lacks_template(self.template, self.info) else ()

    def details(self) -> dict[str, object]:
        """Ollama's ``details`` object, from the config blob."""
        families = self.config.get("model_families")
        return {
            "parent_model": self.parent_model,
            "format": self.config.get("model_format") or "gguf",
            "family": self.config.get("model_family") or self.info.architecture,
            "families": list(families) if isinstance(families, list) else None,
            "parameter_size": self.config.get("model_type") or self.info.parameter_size,
            "quantization_level": self.config.get("file_type") or self.info.file_type,
        }


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """/api/create, validated at the edge; files and adapters map a relative name to a digest."""

    name: ModelName
    from_: ModelName | None = None
    files: dict[str, str] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    license: tuple[str, ...] | None = None
    parameters: dict[str, object] | None = None
    messages: tuple[Message, ...] | None = None
    quantize: str | None = None  # "Q4_K_M", "Q4_K_S" or "Q8_0" (store/quantize.py)


class BrokenManifest(Exception):
    """A manifest we cannot use (bad JSON, missing blobs, not a GGUF model); list skips it."""


def read_model(
    name: ModelName, path: Path, blobs: Blobs, gguf_info: Callable[[str, Path], GGUFInfo]
) -> Model:
    """Resolve one manifest file; BrokenManifest when it cannot be used."""
    try:
        data = path.read_bytes()
        manifest = Manifest.from_bytes(data)
        modified = mf.modified_at(path)
    except (OSError, ValueError) as exc:
        raise BrokenManifest(f"{path}: {exc}") from exc
    model_layer = manifest.layer(mf.MODEL)
    if model_layer is None:
        raise BrokenManifest(f"{path}: no model layer (not a GGUF model)")
    try:
        config = json.loads(blobs.path(manifest.config.digest).read_bytes())
        texts = {layer.digest: blobs.path(layer.digest).read_text(encoding="utf-8")
                 for layer in manifest.layers
                 if layer.media_type in (mf.TEMPLATE, mf.PROMPT, mf.SYSTEM, mf.PARAMS,
                                         mf.MESSAGES, mf.LICENSE)}
        params = json.loads(_text(manifest, texts, mf.PARAMS) or "{}")
        messages = json.loads(_text(manifest, texts, mf.MESSAGES) or "[]")
    except (OSError, ValueError) as exc:
        raise BrokenManifest(f"{path}: {exc}") from exc
    model_path = blobs.path(model_layer.digest)
    if not model_path.is_file():
        raise BrokenManifest(f"{path}: the model blob {model_layer.digest} is missing")
    template = _text(manifest, texts, mf.TEMPLATE)
    if template is None:
        template = _text(manifest, texts, mf.PROMPT)
    return Model(
        name=name,
        digest=hashlib.sha256(data).hexdigest(),
        size=manifest.size,
        modified_at=modified,
        model_path=model_path,
        model_digest=model_layer.digest,
        adapters=tuple(blobs.path(x.digest) for x in manifest.layers if x.media_type == mf.ADAPTER),
        projectors=tuple(blobs.path(x.digest) for x in manifest.layers if x.media_type == mf.PROJECTOR),
        template=template,
        system=_text(manifest, texts, mf.SYSTEM),
        license=tuple(texts[x.digest] for x in manifest.layers if x.media_type == mf.LICENSE),
        parameters=params if isinstance(params, dict) else {},
        messages=tuple(
            Message(str(m.get("role", "")), str(m.get("content", "")))
            for m in messages if isinstance(m, dict)
        ) if isinstance(messages, list) else (),
        config=config if isinstance(config, dict) else {},
        info=gguf_info(model_layer.digest, model_path),
        parent_model=model_layer.from_ or "",
    )


def _text(manifest: Manifest, texts: dict[str, str], media_type: str) -> str | None:
    layer = manifest.layer(media_type)
    return None if layer is None else texts[layer.digest]
