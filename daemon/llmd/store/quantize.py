"""``create --quantize``: an F16, BF16 or F32 GGUF requantized with llama.cpp's own quantizer.

The quantizer (``llama_model_quantize``) runs in a child process, ``python -m
llmd.store.quantize SRC DST TYPE``, so that the daemon never maps libllama and a crash in the
quantizer takes only the create down. The child writes into a temp file in ``blobs/`` (named for
the daemon, so start-up cleaning keeps it while the daemon lives), prints a line per tensor done,
and the store hashes and renames the file into place only once the child succeeded.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

from llmd.errors import InvalidModelFile, InvalidRequest
from llmd.store.blobs import Blobs, temp_path
from llmd.store.progress import Progress

# Ollama's set, as fs/ggml/type.go ParseFileType spells them, with llama.cpp's llama_ftype.
TYPES = {"Q4_K_M": 15, "Q4_K_S": 14, "Q8_0": 7}
_ALIASES = {"Q4_K": "Q4_K_M"}
SOURCES = ("F16", "BF16", "F32")
_TENSOR = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]")


def parse_type(text: str) -> str:
    """The canonical name of a quantization type; InvalidRequest for one llmd does not make."""
    name = _ALIASES.get(text.upper(), text.upper())
    if name not in TYPES:
        raise InvalidRequest(
            f"unsupported quantization type {text} - supported types are q4_K_M, q4_K_S, q8_0"
        )
    return name


def check_source(file_type: str) -> None:
    if file_type not in SOURCES:
        raise InvalidRequest("quantization is only supported for F16, BF16 and F32 models")


def quantize(
    blobs: Blobs, digest: str, source_type: str, target: str
) -> Generator[Progress, None, str]:
    """Yield progress while the child quantizes blob ``digest``; return the new blob's digest."""
    source = blobs.path(digest)
    total = source.stat().st_size
    status = f"quantizing {source_type} model to {target}"
    yield Progress(status, digest, total, 0)
    blobs.dir.mkdir(parents=True, exist_ok=True)
    temp = temp_path(blobs.dir)
    child = subprocess.Popen(
        [sys.executable, "-m", "llmd.store.quantize", str(source), str(temp), target],
        # one pipe for both: a child that fills an unread stderr pipe would block for ever
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert child.stdout is not None
        error = "no reason given"
        for line in child.stdout:
            done, _, count = line.partition(" ")
            if done.isdigit() and count.strip().isdigit():
                yield Progress(status, digest, total, total * int(done) // max(1, int(count)))
            elif line.strip():
                error = line.strip()
        if child.wait() != 0:
            # llama.cpp gives up on the file: an architecture or tensor it cannot quantize
            raise InvalidModelFile(f"quantization to {target} failed: {error}")
        new = blobs.adopt(temp)
        yield Progress(status, digest, total, total)
        return new
    finally:
        if child.poll() is None:  # the create was abandoned: stop the child
            child.kill()
            child.wait()
        temp.unlink(missing_ok=True)


def _main(argv: list[str]) -> int:
    source, target, kind = argv
    from llmd.submodule import bare_package

    bare_package("llama_cpp")  # the ctypes bindings alone, not llama_cpp's high-level API
    from llama_cpp import llama_cpp as lc

    errors: list[str] = []

    @lc.llama_log_callback  # type: ignore[misc]
    def log(level: int, text: bytes, _: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", "replace")
        match = _TENSOR.match(line)
        if match:  # "[   3/  12] token_embd.weight - ..." starts each tensor
            print(int(match[1]) - 1, match[2], flush=True)
        elif level >= 4:  # GGML_LOG_LEVEL_ERROR
            errors.append(line.strip())

    lc.llama_log_set(log, None)
    params = lc.llama_model_quantize_default_params()
    params.ftype = TYPES[kind]
    params.nthread = len(os.sched_getaffinity(0))
    if lc.llama_model_quantize(source.encode(), target.encode(), ctypes.byref(params)) != 0:
        print(errors[-1] if errors else "llama_model_quantize failed", file=sys.stderr)
        return 1
    Path(target).stat()  # it wrote what it said it did
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
