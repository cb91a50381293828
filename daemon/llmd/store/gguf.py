"""GGUF metadata without the weights: the header, every KV pair and the tensor table.

We read the header ourselves with ``struct`` over an mmap, using the ``gguf`` package (llama.cpp's
own) for the format's constants. gguf.GGUFReader would do it too, but it builds a numpy view per
array element: 2.5 s on the 98 MB SmolLM2 file against ~0.1 s here, and create and /api/show read
this on every call.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from llmd.errors import InvalidModelFile
from llmd.submodule import standalone

# gguf/constants.py alone: the package's __init__ would import numpy and its reader and writer.
_constants = standalone("gguf", "constants")
GGML_QUANT_SIZES = _constants.GGML_QUANT_SIZES
GGUF_DEFAULT_ALIGNMENT: int = _constants.GGUF_DEFAULT_ALIGNMENT
GGUFValueType = _constants.GGUFValueType
LlamaFileType = _constants.LlamaFileType
_FLOAT32 = struct.Struct("<f")

_MAGIC = b"GGUF"
_SCALARS = {
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H", GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i",
    GGUFValueType.UINT64: "Q", GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT32: "f", GGUFValueType.FLOAT64: "d",
    GGUFValueType.BOOL: "?",
}
# Sanity bounds, so that a corrupt count fails fast instead of allocating without end.
_MAX_COUNT = 1 << 32
_MAX_DIMS = 8
# Arrays longer than this (the vocabulary, the merges) stay in the file until someone asks.
_EAGER_ITEMS = 64


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    architecture: str
    parameter_count: int
    parameter_size: str  # as Ollama shows it: "134.52M", "8.0B"
    file_type: str  # "Q4_1"
    context_length: int
    embedding_length: int
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    pooling: bool  # an embedding model
    # every KV, for /api/show model_info: short arrays as tuples, long ones as GGUFArray
    metadata: dict[str, object]


class _Truncated(Exception):
    pass


class GGUFArray(Sequence[object]):
    """A long metadata array left in the file: its length is known, its items are read on use.

    It looks like a numpy array to the API's trimming (``len``, ``dtype``, ``tolist``), so
    /api/show without ``verbose`` never decodes the 49k-token vocabulary.
    """

    __slots__ = ("count", "item_kind", "offset", "order", "path")

    def __init__(self, path: Path, offset: int, count: int, item_kind: int, order: str) -> None:
        self.path, self.offset, self.count = path, offset, count
        self.item_kind, self.order = item_kind, order

    @property
    def dtype(self) -> str:
        return GGUFValueType(self.item_kind).name.lower()

    def __len__(self) -> int:
        return self.count

    def tolist(self) -> list[object]:
        with open(self.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            r = _Reader(buf, self.order)
            r.pos = self.offset
            return list(r.items(self.item_kind, self.count))

    def __iter__(self) -> Iterator[object]:
        return iter(self.tolist())

    @overload
    def __getitem__(self, index: int) -> object: ...
    @overload
    def __getitem__(self, index: slice) -> list[object]: ...
    def __getitem__(self, index: int | slice) -> object:
        return self.tolist()[index]

    def __repr__(self) -> str:
        return f"GGUFArray({self.dtype}, {self.count} items)"


def _shortest_float32(value: float) -> float:
    """The fewest significant digits that read back as the same float32 (numpy's str())."""
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            if _FLOAT32.unpack(_FLOAT32.pack(float(text)))[0] == value:
                return float(text)
        except OverflowError:
            continue
    return value  # nan, which equals nothing


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, order: str, path: Path | None = None) -> None:
        self.buf = buf
        self.path = path
        self.pos = 0
        self.order = order

    def unpack(self, fmt: str) -> tuple[object, ...]:
        s = struct.Struct(self.order + fmt)
        if self.pos + s.size > len(self.buf):
            raise _Truncated
        values = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return values

    def u32(self) -> int:
        return self.unpack("I")[0]  # type: ignore[return-value]

    def u64(self) -> int:
        return self.unpack("Q")[0]  # type: ignore[return-value]

    def string(self) -> str:
        n = self.u64()
        end = self.pos + n
        if end > len(self.buf):
            raise _Truncated
        text = bytes(self.buf[self.pos:end]).decode("utf-8", "replace")
        self.pos = end
        return text

    def value(self, kind: int) -> object:
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            item_kind = self.u32()
            count = self.u64()
            if count > _MAX_COUNT:
                raise InvalidModelFile("invalid GGUF file: impossible array length")
            if count <= _EAGER_ITEMS or self.path is None:
                return self.items(item_kind, count)
            lazy = GGUFArray(self.path, self.pos, count, item_kind, self.order)
            self.skip(item_kind, count)
            return lazy
        fmt = self._scalar(kind)
        value = self.unpack(fmt)[0]
        if fmt == "f":
            # shortest text that round-trips the float32, as Go prints it (1e-05, not 9.99e-06)
            value = _shortest_float32(value)  # type: ignore[arg-type]
        return value

    @staticmethod
    def _scalar(kind: int) -> str:
        try:
            return _SCALARS[GGUFValueType(kind)]
        except (ValueError, KeyError):
            raise InvalidModelFile(f"invalid GGUF file: unknown value type {kind}") from None

    def items(self, kind: int, count: int) -> tuple[object, ...]:
        if kind in (GGUFValueType.STRING, GGUFValueType.ARRAY):
            return tuple(self.value(kind) for _ in range(count))
        return self.unpack(f"{count}{self._scalar(kind)}")  # one C-level unpack for all

    def skip(self, kind: int, count: int) -> None:
        if kind == GGUFValueType.STRING:
            length = struct.Struct(self.order + "Q")
            buf, pos, size = self.buf, self.pos, len(self.buf)
            for _ in range(count):
                if pos + 8 > size:
                    raise _Truncated
                pos += 8 + length.unpack_from(buf, pos)[0]
            if pos > size:
                raise _Truncated
            self.pos = pos
        elif kind == GGUFValueType.ARRAY:
            for _ in range(count):
                self.value(kind)
        else:
            self.pos += struct.calcsize(self.order + self._scalar(kind)) * count
            if self.pos > len(self.buf):
                raise _Truncated


def human_number(n: int) -> str:
    """Ollama's format.HumanNumber: 134515008 -> "134.52M", 8030261248 -> "8.0B"."""
    for scale, unit, places in ((10**12, "T", 1), (10**9, "B", 1), (10**6, "M", 2)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.{places}f}{unit}"
    if n >= 1000:
        return f"{n / 1000:.0f}K"
    return str(n)


def file_type_name(value: int) -> str:
    """llama.cpp's file type number as Ollama shows it: 3 -> "Q4_1", 0 -> "F32"."""
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return "unknown"
    return {"ALL_F32": "F32", "MOSTLY_MXFP4_MOE": "MXFP4"}.get(name, name.removeprefix("MOSTLY_"))


def _read(buf: mmap.mmap | bytes, size: int, path: Path) -> GGUFInfo:
    if bytes(buf[:4]) != _MAGIC:
        raise InvalidModelFile("unsupported model format: not a GGUF file")
    version_le = struct.unpack_from("<I", buf, 4)[0]
    # A big-endian GGUF stores its version big-endian: a small number read the other way round.
    order = "<" if version_le < 0x10000 else ">"
    r = _Reader(buf, order, path)
    r.pos = 4
    version = r.u32()
    if version not in (2, 3):
        raise InvalidModelFile(f"unsupported GGUF version {version}")
    tensor_count, kv_count = r.u64(), r.u64()
    if tensor_count > _MAX_COUNT or kv_count > _MAX_COUNT:
        raise InvalidModelFile("invalid GGUF header: impossible tensor or key count")
    kv: dict[str, object] = {}
    for _ in range(kv_count):
        key = r.string()
        kv[key] = r.value(r.u32())

    parameters = 0
    tensors_end = 0
    tensors: list[tuple[int, int, int]] = []  # (offset, elements, type)
    for _ in range(tensor_count):
        r.string()
        n_dims = r.u32()
        if n_dims > _MAX_DIMS:
            raise InvalidModelFile("invalid GGUF tensor: too many dimensions")
        dims = r.unpack(f"{n_dims}Q")
        kind, offset = r.u32(), r.u64()
        elements = 1
        for d in dims:
            elements *= int(d)  # type: ignore[call-overload]
        parameters += elements
        tensors.append((offset, elements, kind))
    alignment = int(kv.get("general.alignment", GGUF_DEFAULT_ALIGNMENT))  # type: ignore[call-overload]
    data_start = -(-r.pos // alignment) * alignment
    for offset, elements, kind in tensors:
        try:
            block, type_size = GGML_QUANT_SIZES[kind]  # type: ignore[index]
        except KeyError:
            raise InvalidModelFile(f"unknown GGUF tensor type {kind}") from None
        tensors_end = max(tensors_end, data_start + offset + elements // block * type_size)
    if tensors_end > size:
        raise _Truncated
    return _summarise(kv, parameters, r)


def _summarise(kv: dict[str, object], tensor_parameters: int, r: _Reader) -> GGUFInfo:
    arch = str(kv.get("general.architecture", ""))
    if not arch:
        raise InvalidModelFile("invalid GGUF: general.architecture is missing")
    count = kv.get("general.parameter_count")
    parameter_count = int(count) if isinstance(count, int) else tensor_parameters
    # Ollama always shows a parameter count in model_info, computing it when the file lacks one.
    kv.setdefault("general.parameter_count", parameter_count)
    tokens = kv.get("tokenizer.ggml.tokens")

    def token(key: str) -> str | None:
        index = kv.get(key)
        if not isinstance(index, int) or not isinstance(tokens, (tuple, GGUFArray)):
            return None
        if not 0 <= index < len(tokens):
            return None
        if isinstance(tokens, tuple):
            return str(tokens[index])
        r.pos = tokens.offset  # walk to the one token we need; the rest stay undecoded
        r.skip(GGUFValueType.STRING, index)
        return r.string()

    def number(key: str) -> int:
        value = kv.get(f"{arch}.{key}")
        return int(value) if isinstance(value, (int, float)) else 0

    template = kv.get("tokenizer.chat_template")
    file_type = kv.get("general.file_type")
    return GGUFInfo(
        architecture=arch,
        parameter_count=parameter_count,
        parameter_size=human_number(parameter_count),
        file_type=file_type_name(file_type) if isinstance(file_type, int) else "unknown",
        context_length=number("context_length"),
        embedding_length=number("embedding_length"),
        chat_template=template if isinstance(template, str) else None,
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        # Ollama's rule: a pooling type in the metadata makes it an embedding model
        pooling=f"{arch}.pooling_type" in kv,
        metadata=kv,
    )


def read_gguf_info(path: Path) -> GGUFInfo:
    """The metadata of a GGUF file; InvalidModelFile when it is not one or is cut short."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size < 24:
                if size >= 4:
                    f.seek(0)
                    if f.read(4) != _MAGIC:
                        raise InvalidModelFile("unsupported model format: not a GGUF file")
                raise _Truncated
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _read(buf, size, Path(path))
    except _Truncated:
        raise InvalidModelFile("invalid GGUF file: the file is truncated") from None
    except struct.error as exc:
        raise InvalidModelFile(f"invalid GGUF file: {exc}") from None
    except InvalidModelFile:
        raise
    except OSError as exc:
        raise InvalidModelFile(f"cannot read model file: {exc.strerror or exc}") from None
