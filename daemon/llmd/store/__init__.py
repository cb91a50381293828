"""The model store: names, blobs, manifests, Modelfiles, GGUF metadata (see CONTRACT.md)."""

from llmd.runner.options import check_parameters
from llmd.store.digest import parse_digest
from llmd.store.gguf import GGUFArray, GGUFInfo, read_gguf_info
from llmd.store.local_import import create_from_modelfile
from llmd.store.modelfile import (
    CreateSources,
    Modelfile,
    format_modelfile,
    parse_modelfile,
    resolve_sources,
)
from llmd.store.models import CreateRequest, Message, Model
from llmd.store.names import ModelName
from llmd.store.progress import Progress
from llmd.store.quantize import parse_type as parse_quantize_type
from llmd.store.store import Store

__all__ = [
    "CreateRequest",
    "CreateSources",
    "GGUFArray",
    "GGUFInfo",
    "Message",
    "Model",
    "ModelName",
    "Modelfile",
    "Progress",
    "Store",
    "check_parameters",
    "create_from_modelfile",
    "format_modelfile",
    "parse_digest",
    "parse_modelfile",
    "parse_quantize_type",
    "read_gguf_info",
    "resolve_sources",
]
