"""What a runner computes on: ggml's CPU backend variant and the features it was built with.

An operator reading a crash record needs to know which kernels ran: the portable package loads
one ``libggml-cpu-<variant>.so`` of several (``haswell``, ``icelake``, ``zen4``...), picked by
ggml for the running CPU; a development build has a single ``libggml-cpu.so`` (``native``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_MODULE = re.compile(r"/libggml-cpu(?:-([A-Za-z0-9_.]+))?\.so(?:\.[0-9.]+)?$")
_FEATURE = re.compile(r"([A-Z][A-Z0-9_]*) = 1")


@dataclass(frozen=True, slots=True)
class CpuInfo:
    variant: str  # "native" for a single-module build, else the variant module's tag
    features: tuple[str, ...]  # those llama.cpp reports as in use, e.g. ("AVX2", "AVX512")

    def to_wire(self) -> dict[str, object]:
        return {"variant": self.variant, "features": list(self.features)}

    @classmethod
    def from_wire(cls, value: object) -> CpuInfo | None:
        if not isinstance(value, dict):
            return None
        features = value.get("features")
        return cls(
            str(value.get("variant", "")),
            tuple(str(f) for f in features) if isinstance(features, list) else (),
        )


def variant_from_maps(lines: Iterable[str]) -> str:
    """The CPU module this process mapped, from ``/proc/self/maps`` lines; "" if none."""
    for line in lines:
        match = _MODULE.search(line.rstrip())
        if match:
            return match.group(1) or "native"
    return ""


def features_from_system_info(text: str) -> tuple[str, ...]:
    """The ``CPU : SSE3 = 1 | AVX = 1 | ...`` part of ``llama_print_system_info()``, features on."""
    cpu = text.split("CPU :", 1)[1] if "CPU :" in text else text
    # The CPU section ends where the next backend's "NAME :" begins.
    cpu = re.split(r"\|\s*[A-Za-z0-9_]+ :", cpu, maxsplit=1)[0]
    return tuple(dict.fromkeys(_FEATURE.findall(cpu)))


def probe(system_info: bytes) -> CpuInfo:
    """This process's CpuInfo, once llama.cpp has loaded its backends."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            variant = variant_from_maps(maps)
    except OSError:
        variant = ""
    return CpuInfo(variant or "unknown", features_from_system_info(system_info.decode(errors="replace")))
