"""Model names parse as Ollama's types/model/name.go does."""

from __future__ import annotations

from pathlib import Path

import pytest
from llmd.errors import InvalidModelName
from llmd.store import ModelName

VALID = [
    # text, (host, namespace, model, tag), short form
    ("smollm2", ("registry.ollama.ai", "library", "smollm2", "latest"), "smollm2:latest"),
    ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m"), "smollm2:135m"),
    ("me/mine:v1.2", ("registry.ollama.ai", "me", "mine", "v1.2"), "me/mine:v1.2"),
    ("library/llama3.2", ("registry.ollama.ai", "library", "llama3.2", "latest"), "llama3.2:latest"),
    ("example.com/ns/m:t", ("example.com", "ns", "m", "t"), "example.com/ns/m:t"),
    ("localhost:5000/ns/m", ("localhost:5000", "ns", "m", "latest"), "localhost:5000/ns/m:latest"),
    ("localhost:5000/ns/m:8b", ("localhost:5000", "ns", "m", "8b"), "localhost:5000/ns/m:8b"),
    ("REGISTRY.OLLAMA.AI/Library/Mixed_Case:Q4", ("REGISTRY.OLLAMA.AI", "Library", "Mixed_Case", "Q4"),
     "Mixed_Case:Q4"),
    ("_under/_score:_t", ("registry.ollama.ai", "_under", "_score", "_t"), "_under/_score:_t"),
    ("m-" + "x" * 78, ("registry.ollama.ai", "library", "m-" + "x" * 78, "latest"),
     "m-" + "x" * 78 + ":latest"),
]

INVALID = [
    "",
    ":tag",
    "model:",
    "/model",
    "ns/",
    "host//model",
    "-leading-dash",
    "model:-tag",
    "ns.dotted/model",  # namespaces take no dots
    "ns/mo:del/x",  # a ":" before the last "/" is only allowed in a host
    "a/b/c/d",  # too many parts
    "model:tag:more",
    "mödel",
    "m" * 81,
    "model:" + "t" * 81,
    "ftp://host/ns/model",
    "has space",
    "model@sha256:abc",
]


@pytest.mark.parametrize(("text", "parts", "short"), VALID)
def test_valid_names_parse_to_their_parts_and_short_form(
    text: str, parts: tuple[str, str, str, str], short: str
) -> None:
    name = ModelName.parse(text)
    assert (name.host, name.namespace, name.model, name.tag) == parts
    assert name.short == short


@pytest.mark.parametrize("text", INVALID)
def test_invalid_names_are_refused_with_ollamas_message(text: str) -> None:
    with pytest.raises(InvalidModelName, match="^invalid model name$"):
        ModelName.parse(text)


def test_a_scheme_prefix_is_kept_but_not_part_of_equality() -> None:
    plain = ModelName.parse("localhost:5000/ns/m:t")
    insecure = ModelName.parse("http://localhost:5000/ns/m:t")
    assert insecure.scheme == "http" and plain.scheme == "https"
    assert insecure == plain
    assert insecure.host == "localhost:5000"


def test_lookup_key_ignores_case() -> None:
    a = ModelName.parse("SmolLM2:135M")
    b = ModelName.parse("smollm2:135m")
    assert a != b
    assert a.casefold_key() == b.casefold_key()


def test_manifest_path_follows_ollamas_layout() -> None:
    name = ModelName.parse("me/mine:v1")
    assert name.manifest_path(Path("/m")) == Path("/m/manifests/registry.ollama.ai/me/mine/v1")
