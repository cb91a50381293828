"""Tiny GGUF files written with llama.cpp's own ``gguf`` package, for what SmolLM2 cannot show.

``write_llama`` writes a one-layer llama-architecture model (about 1 MB in F16) with a
SentencePiece vocabulary of byte tokens only, so its tokenizer adds BOS as Llama 2 and Mistral do
and every byte of text is one token. Its layers are zero, so the residual stream is the token's own
embedding, whose first component is always 1: a LoRA on ``output.weight`` that reads that
component (``write_lora``) lifts one token above every other, whatever the input. Without the
adapter that token never wins. Rows are 256 wide, the K-quant block size, so every weight can be
quantized to q4_K as llama.cpp would quantize a real model.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

N_EMBD = 256
N_FF = 256
N_HEAD = 4
SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: unk, bos, eos
BOS = 1
BYTES = 3  # id of <0x00>; byte b is token BYTES + b
BOOSTED = BYTES + ord("A")  # the token the test LoRA makes the model say


def byte_token(b: int) -> int:
    return BYTES + b


def _vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = list(SPECIALS) + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    return tokens, [0.0] * len(tokens), [int(t) for t in types]


def write_llama(
    path: Path,
    *,
    chat_template: str | None = None,
    pooling: gguf.PoolingType | None = None,
    seed: int = 0,
) -> Path:
    """A tiny F16 llama model at ``path``; with ``pooling`` an embedding model."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocab()
    n_vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(512)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(1)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    if pooling is not None:
        w.add_pooling_type(pooling)

    def f16(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.5).astype(np.float16)

    embd = f16(n_vocab, N_EMBD)
    embd[:, 0] = 1.0  # a component every token shares: what the test LoRA reads
    output = f16(n_vocab, N_EMBD)
    # Without the adapter the boosted token never wins, nor does end-of-generation, so a
    # generation runs to num_predict.
    for never in (BOOSTED, 2):
        output[never, :] = 0.0
        output[never, 0] = -10.0
    w.add_tensor("token_embd.weight", embd)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", output)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        w.add_tensor(f"blk.0.{name}.weight", np.zeros((N_EMBD, N_EMBD), dtype=np.float16))
    w.add_tensor("blk.0.ffn_gate.weight", np.zeros((N_FF, N_EMBD), dtype=np.float16))
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((N_FF, N_EMBD), dtype=np.float16))
    w.add_tensor("blk.0.ffn_down.weight", np.zeros((N_EMBD, N_FF), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_lora(path: Path, *, boost: float = 1000.0) -> Path:
    """A rank-1 LoRA for ``write_llama``'s model that makes ``BOOSTED`` the likeliest token."""
    n_vocab = len(SPECIALS) + 256
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 1.0)
    a = np.zeros((1, N_EMBD), dtype=np.float32)  # ggml [n_embd, rank]
    a[0, 0] = 1.0
    b = np.zeros((n_vocab, 1), dtype=np.float32)  # ggml [rank, n_vocab]
    b[BOOSTED, 0] = boost
    w.add_tensor("output.weight.lora_a", a)
    w.add_tensor("output.weight.lora_b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_projector(path: Path) -> Path:
    """A stand-in vision projector: a GGUF of architecture ``clip``, as an mmproj file is."""
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_tensor("mm.0.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_unknown(path: Path) -> Path:
    """An F16 GGUF of an architecture llama.cpp does not know: its quantizer refuses it."""
    w = gguf.GGUFWriter(str(path), "nosucharch")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tensor("token_embd.weight", np.zeros((4, 256), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
