#!/usr/bin/env python3
"""Writes the small quantised GGUF models used by Tests/ModelsTests/NativePrecisionTests.swift.

One random-weight decoder (llama architecture with GQA and tied embeddings, and qwen2 with q/k/v
biases and an untied head; hidden 64 so that every projection splits into 32-element blocks) is
written once per resident type: every 2-D weight in Q8_0, Q4_0, Q4_1, F16 or BF16
(quantised by gguf-py's reference `quants.quantize`), norms and biases in F32. A mixed file puts
q/k in Q4_0, v in Q8_0 and the rest in Q4_1, like llama.cpp's "_M" mixes, so that a fused q/k/v
matrix holds rows of several formats.

Outputs (Tests/Fixtures/quant/, ending in .gguf.bin because .gitignore excludes *.gguf):
  llama-{q8_0,q4_0,q4_1,f16,bf16,mixed}.gguf.bin, qwen2-{q8_0,q4_0,bf16}.gguf.bin
The tests compare each file's native-precision forward with its own f32 forward (the dequantised
weights, which GGUFTests check bit-exact against gguf-py), so no golden outputs are needed.

Usage: python3 Tools/make_quant_fixtures.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "quant"

HIDDEN, INNER, LAYERS, HEADS, KV_HEADS, VOCAB = 64, 128, 2, 4, 2, 96


def weights(arch: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    head_dim = HIDDEN // HEADS
    w: dict[str, np.ndarray] = {}

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    w["token_embd.weight"] = mat(VOCAB, HIDDEN)
    for i in range(LAYERS):
        p = f"blk.{i}."
        w[p + "attn_norm.weight"] = (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
        w[p + "attn_q.weight"] = mat(HEADS * head_dim, HIDDEN)
        w[p + "attn_k.weight"] = mat(KV_HEADS * head_dim, HIDDEN)
        w[p + "attn_v.weight"] = mat(KV_HEADS * head_dim, HIDDEN)
        if arch == "qwen2":
            w[p + "attn_q.bias"] = (0.1 * rng.standard_normal(HEADS * head_dim)).astype(np.float32)
            w[p + "attn_k.bias"] = (0.1 * rng.standard_normal(KV_HEADS * head_dim)).astype(np.float32)
            w[p + "attn_v.bias"] = (0.1 * rng.standard_normal(KV_HEADS * head_dim)).astype(np.float32)
        w[p + "attn_output.weight"] = mat(HIDDEN, HEADS * head_dim)
        w[p + "ffn_norm.weight"] = (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
        w[p + "ffn_gate.weight"] = mat(INNER, HIDDEN)
        w[p + "ffn_up.weight"] = mat(INNER, HIDDEN)
        w[p + "ffn_down.weight"] = mat(HIDDEN, INNER)
    w["output_norm.weight"] = (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
    if arch == "qwen2":
        w["output.weight"] = mat(VOCAB, HIDDEN)
    return w


def type_for(name: str, kind: str) -> T:
    if kind == "mixed":
        if ".attn_q." in name or ".attn_k." in name:
            return T.Q4_0
        if ".attn_v." in name:
            return T.Q8_0
        return T.Q4_1
    return {"f32": T.F32, "q8_0": T.Q8_0, "q4_0": T.Q4_0, "q4_1": T.Q4_1, "f16": T.F16, "bf16": T.BF16}[kind]


def write(arch: str, kind: str, w: dict[str, np.ndarray]) -> None:
    path = OUT / f"{arch}-{kind}.gguf.bin"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(LAYERS)
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INNER)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(VOCAB)
    for name, value in w.items():
        qtype = T.F32 if value.ndim == 1 else type_for(name, kind)
        if qtype == T.F32:
            writer.add_tensor(name, value)
        else:
            data = quants.quantize(value, qtype)
            writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for arch, seed, kinds in (("llama", 11, ("q8_0", "q4_0", "q4_1", "f16", "bf16", "mixed")),
                              ("qwen2", 12, ("q8_0", "q4_0", "bf16"))):
        w = weights(arch, np.random.default_rng(seed))
        for kind in kinds:
            write(arch, kind, w)


if __name__ == "__main__":
    main()
