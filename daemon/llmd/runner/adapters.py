"""LoRA adapters (a Modelfile's ADAPTER layers), loaded with llama.cpp's own adapter API.

Each adapter is read once against the model (``llama_adapter_lora_init``) and set, at scale 1 as
Ollama applies them, on every context the runner makes: the generating one and the embedding one.
llama.cpp frees them with the model.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import llama_cpp as lc

from llmd.errors import RunnerLoadFailed


class Adapters:
    def __init__(self, model: ctypes.c_void_p, paths: Sequence[Path]) -> None:
        loaded = []
        for path in paths:
            adapter = lc.llama_adapter_lora_init(model, str(path).encode())
            if not adapter:
                # llama.cpp says why (wrong architecture, shapes that do not fit) only in its log
                raise RunnerLoadFailed(
                    f"unable to load LoRA adapter {path}: not a LoRA GGUF for this model"
                )
            loaded.append(adapter)
        self._array = (lc.llama_adapter_lora_p_ctypes * len(loaded))(*loaded)
        self._scales = (ctypes.c_float * len(loaded))(*([1.0] * len(loaded)))
        self.count = len(loaded)

    def apply(self, ctx: ctypes.c_void_p) -> None:
        if not self.count:
            return
        if lc.llama_set_adapters_lora(ctx, self._array, self.count, self._scales) != 0:
            raise RunnerLoadFailed("unable to apply the LoRA adapters to the context")
