"""Model names, parsed once as Ollama's types/model/name.go does.

Grammar: ``[scheme://][host/][namespace/]model[:tag]``; missing parts take the defaults
``registry.ollama.ai``, ``library`` and ``latest``. Anything that does not fit raises
InvalidModelName("invalid model name"), Ollama's message for every malformed name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from llmd.errors import InvalidModelName

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_SCHEME = "https"

# Every part starts with [A-Za-z0-9_]; the rest of the alphabet depends on the part (name.go
# isValidPart): namespaces take no ".", only hosts take ":" (a port).
_PARTS = {
    "host": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"),
    "namespace": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"),
    "model": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
}
_SCHEMES = ("http", "https")


def _cut_last(text: str, sep: str) -> tuple[str, str | None]:
    """(before, after) at the last ``sep``; after is None when there is none.

    An empty side of a found separator stays empty and so fails validation, as Go's
    cutPromised marks it as a missing part.
    """
    i = text.rfind(sep)
    if i < 0:
        return text, None
    return text[:i], text[i + len(sep):]


@dataclass(frozen=True, slots=True, order=True)
class ModelName:
    host: str = DEFAULT_HOST
    namespace: str = DEFAULT_NAMESPACE
    model: str = ""
    tag: str = DEFAULT_TAG
    scheme: str = field(default=DEFAULT_SCHEME, compare=False)

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse and fill in defaults; InvalidModelName when any part is malformed."""
        if not isinstance(text, str):
            raise InvalidModelName("invalid model name")
        rest = text
        tag: str | None = None
        # "/" cannot occur in a tag, so a ":" after the last "/" starts the tag; one before it
        # belongs to the host (a port or a scheme).
        if rest.rfind(":") > rest.rfind("/"):
            rest, tag = _cut_last(rest, ":")
        rest, model = _cut_last(rest, "/")
        namespace: str | None = None
        host: str | None = None
        scheme = DEFAULT_SCHEME
        if model is None:
            model, rest = rest, ""
        else:
            rest, namespace = _cut_last(rest, "/")
            if namespace is None:
                namespace, rest = rest, ""
            else:
                host = rest
                if "://" in host:
                    scheme, host = host.split("://", 1)
                    if scheme not in _SCHEMES:
                        raise InvalidModelName("invalid model name")
        name = cls(
            host=DEFAULT_HOST if host is None else host,
            namespace=DEFAULT_NAMESPACE if namespace is None else namespace,
            model=model,
            tag=DEFAULT_TAG if tag is None else tag,
            scheme=scheme,
        )
        for part in ("host", "namespace", "model", "tag"):
            if not _PARTS[part].fullmatch(getattr(name, part)):
                raise InvalidModelName("invalid model name")
        return name

    @property
    def short(self) -> str:
        """Ollama's DisplayShortest: ``m:tag``, ``ns/m:tag`` or ``host/ns/m:tag``."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    def __str__(self) -> str:
        return self.short

    def manifest_path(self, root: Path) -> Path:
        return root / "manifests" / self.host / self.namespace / self.model / self.tag

    def casefold_key(self) -> tuple[str, str, str, str]:
        """Names are looked up case-insensitively (Ollama's getExistingName)."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())
