"""No build of llama.cpp that llmd runs carries AMX tile code (packaging/llama-wheel.sh says why).

On a Sapphire Rapids or newer Xeon, llama.cpp's AMX matmul faulted at ``ldtilecfg`` on every
prompt longer than one token. These checks hold on any x86-64 machine, AMX or not: the binaries
that exist are disassembled, and the flags and source patch that every build uses are checked to
disable AMX even where ``-march`` would enable it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import llama_cpp
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "llama-wheel.sh"
# AMX's own instructions: a tile configuration load, tile loads/stores and the tile dot products
_TILE = re.compile(r"\s(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilezero|tilerelease|tdp\w+)\s")


def _tile_instructions(library: Path) -> list[str]:
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)],
        capture_output=True, text=True, check=True,
    ).stdout
    return sorted({m.group(1) for m in _TILE.finditer(listing)})


def _cpu_modules(tmp_path: Path) -> list[Path]:
    """Every libggml-cpu*.so built here: the venv's, the package's wheels', the bench reference's."""
    found = sorted(Path(llama_cpp.__file__).parent.joinpath("lib").glob("libggml-cpu*.so"))
    for wheel in sorted((REPO / ".cache" / "pkg").glob("llama-cpp-python-*-portable-*/*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if re.search(r"llama_cpp/lib/libggml-cpu[^/]*\.so$", name):
                    found.append(Path(archive.extract(name, tmp_path / wheel.parent.name)))
    found += sorted((REPO / ".cache" / "reference").glob("*/build/bin/libggml-cpu*.so"))
    return found


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_no_built_ggml_cpu_module_contains_amx_tile_instructions(tmp_path: Path) -> None:
    modules = _cpu_modules(tmp_path)
    assert modules, "the venv's llama_cpp/lib holds no libggml-cpu module"
    offending = {str(m): _tile_instructions(m) for m in modules}
    assert {m: found for m, found in offending.items() if found} == {}


def _predefined(*flags: str) -> set[str]:
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is part of make test's apt packages"
    out = subprocess.run(
        [cc, *flags, "-dM", "-E", "-x", "c", "/dev/null"],
        capture_output=True, text=True, check=True,
    ).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("#define ")}


def test_the_build_flags_turn_amx_off_even_where_march_turns_it_on() -> None:
    cflags = subprocess.run(
        ["sh", str(SCRIPT), "cflags"], capture_output=True, text=True, check=True
    ).stdout.split()
    amx = {"__AMX_TILE__", "__AMX_INT8__", "__AMX_BF16__"}
    # The probe can fail: -march=sapphirerapids alone enables AMX (what -march=native does there).
    assert amx <= _predefined("-march=sapphirerapids")
    assert not amx & _predefined("-march=sapphirerapids", *cflags)
    assert not amx & _predefined(*cflags, "-march=sapphirerapids")  # whatever the order


def test_the_portable_builds_sapphirerapids_variant_is_configured_without_amx() -> None:
    src = subprocess.run(
        ["sh", str(SCRIPT), "source", str(REPO / ".cache" / "wheels"),
         str(Path(sys.executable).parent / "pip")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    cmake = (Path(src) / "vendor/llama.cpp/ggml/src/CMakeLists.txt").read_text()
    [variant] = re.findall(r"ggml_add_cpu_backend_variant\(sapphirerapids[^)]*\)", cmake)
    assert "AVX512_VNNI" in variant and "AMX" not in variant
