#!/usr/bin/env python3
"""Random-weight Llama / Qwen2 checkpoints in the real Hugging Face layout, a GGUF conversion of
one of them, and the goldens transformers (float32) computes for them.

  python3 Tools/make_llama_fixtures.py                 # tiny folders + goldens under Tests/Fixtures/llama/
  python3 Tools/make_llama_fixtures.py --smollm2 FILE  # Tests/Fixtures/llama/smollm2_golden.json from a SmolLM2 GGUF
  python3 Tools/make_llama_fixtures.py --bench-model OUT_DIR   # random Qwen2-0.5B-shaped folder (bf16, ~1 GB) for `atp bench lm`

Tiny fixtures (written by transformers' own `save_pretrained`):
  llama-gqa-f32/      LlamaForCausalLM, untied lm_head, 6 heads / 2 kv heads, head_dim 8, rope llama3 scaling, F32
  llama-gqa-f32.gguf  the same weights as a llama.cpp-style GGUF (F32, q/k rows permuted exactly as
                      convert_hf_to_gguf.py's LlamaModel.permute does, llama3 factors in rope_freqs.weight)
  qwen2-tied-bf16/    Qwen2ForCausalLM, q/k/v bias, tied embeddings, 4 heads / 2 kv heads, rope_theta 1e6, BF16
  qwen2-tied-bf16-4x/ the same weights with config.json rewritten in the 4.x layout (top-level rope_theta, torch_dtype)
  golden.json         per folder: prompt ids, last-position logits, all-position logits of the prompt, 8 greedy ids
                      (`generate(do_sample=False)`), all computed with dtype=torch.float32.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "llama"

PROMPT = [1, 17, 42, 255, 3, 99, 150, 7, 200, 64, 12, 5]


def llama_config():
    from transformers import LlamaConfig
    return LlamaConfig(
        vocab_size=300, hidden_size=48, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=6, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
        max_position_embeddings=256, tie_word_embeddings=False, attention_bias=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
        bos_token_id=1, eos_token_id=[2, 299], initializer_range=0.2)


def qwen2_config():
    from transformers import Qwen2Config
    return Qwen2Config(
        vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
        max_position_embeddings=512, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        bos_token_id=1, eos_token_id=2, initializer_range=0.2)


def randomize(model, seed):
    """Default init leaves norms at 1 and biases at 0; perturb everything so each weight matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def goldens(folder: Path):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        logits = model(ids).logits[0]
        out = model.generate(ids, do_sample=False, max_new_tokens=8, min_new_tokens=0,
                             attention_mask=torch.ones_like(ids), pad_token_id=0)
    gen = out[0, len(PROMPT):].tolist()
    return {
        "prompt_ids": PROMPT,
        "last_logits": [float(x) for x in logits[-1]],
        "all_logits": [[float(x) for x in row] for row in logits],
        "greedy_ids": gen,
    }


def llama_permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py LlamaModel.permute: rotate_half pairs -> interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_writer(path: Path, arch: str, name: str, cfg: dict, rope_dim: int | None = None, file_type=None):
    """A GGUFWriter with the hyper-parameters of an HF config and a placeholder vocabulary (t0, t1, …)."""
    import gguf
    rp = cfg.get("rope_parameters") or {"rope_theta": cfg["rope_theta"]}
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_freq_base(rp["rope_theta"])
    if rope_dim is not None:
        writer.add_rope_dimension_count(rope_dim)
    writer.add_file_type(file_type if file_type is not None else gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"t{i}" for i in range(cfg["vocab_size"])])
    return writer


def add_layer_tail(writer, w: dict, i: int):
    """Layer i's attention output, MLP norm and MLP tensors, under llama.cpp's names."""
    p = f"model.layers.{i}."
    writer.add_tensor(f"blk.{i}.attn_output.weight", w[p + "self_attn.o_proj.weight"])
    writer.add_tensor(f"blk.{i}.ffn_norm.weight", w[p + "post_attention_layernorm.weight"])
    writer.add_tensor(f"blk.{i}.ffn_gate.weight", w[p + "mlp.gate_proj.weight"])
    writer.add_tensor(f"blk.{i}.ffn_up.weight", w[p + "mlp.up_proj.weight"])
    writer.add_tensor(f"blk.{i}.ffn_down.weight", w[p + "mlp.down_proj.weight"])


def finish(writer):
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_gguf(folder: Path, path: Path):
    import gguf
    from safetensors.numpy import load_file
    cfg = json.loads((folder / "config.json").read_text())
    w = load_file(folder / "model.safetensors")
    heads, kv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    rp = cfg["rope_parameters"]
    writer = gguf_writer(path, "llama", "atp tiny llama", cfg, rope_dim=hd)
    writer.add_bos_token_id(cfg["bos_token_id"])
    writer.add_eos_token_id(cfg["eos_token_id"][0])
    # llama3 rope scaling as convert_hf_to_gguf.py stores it: per-dimension divisors in rope_freqs.weight.
    base, factor = rp["rope_theta"], rp["factor"]
    lo, hi, old = rp["low_freq_factor"], rp["high_freq_factor"], rp["original_max_position_embeddings"]
    freqs = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    factors = []
    for f in freqs.tolist():
        wavelen = 2 * np.pi / f
        if wavelen < old / hi:
            factors.append(1.0)
        elif wavelen > old / lo:
            factors.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    writer.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    writer.add_tensor("token_embd.weight", w["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", w[p + "input_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.attn_q.weight", llama_permute(w[p + "self_attn.q_proj.weight"], heads, heads))
        writer.add_tensor(f"blk.{i}.attn_k.weight", llama_permute(w[p + "self_attn.k_proj.weight"], heads, kv))
        writer.add_tensor(f"blk.{i}.attn_v.weight", w[p + "self_attn.v_proj.weight"])
        add_layer_tail(writer, w, i)
    writer.add_tensor("output_norm.weight", w["model.norm.weight"])
    writer.add_tensor("output.weight", w["lm_head.weight"])
    finish(writer)


def rewrite_4x(src: Path, dst: Path):
    """Copies a 5.x folder and rewrites config.json in the 4.x layout."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp["rope_theta"]
    cfg["rope_scaling"] = None
    cfg["torch_dtype"] = cfg.pop("dtype")
    cfg["use_sliding_window"] = False
    cfg["sliding_window"] = None
    cfg["max_window_layers"] = cfg["num_hidden_layers"]
    cfg.pop("layer_types", None)
    cfg["transformers_version"] = "4.45.2"
    (dst / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def make_tiny():
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM
    OUT.mkdir(parents=True, exist_ok=True)
    golden = {}

    torch.manual_seed(0)
    llama = LlamaForCausalLM(llama_config()).eval()
    randomize(llama, 10)
    d = OUT / "llama-gqa-f32"
    llama.save_pretrained(d)
    golden["llama-gqa-f32"] = goldens(d)
    write_gguf(d, OUT / "llama-gqa-f32.gguf")

    torch.manual_seed(1)
    qwen = Qwen2ForCausalLM(qwen2_config()).eval()
    randomize(qwen, 11)
    d = OUT / "qwen2-tied-bf16"
    qwen.to(torch.bfloat16).save_pretrained(d)
    golden["qwen2-tied-bf16"] = goldens(d)
    rewrite_4x(d, OUT / "qwen2-tied-bf16-4x")
    golden["qwen2-tied-bf16-4x"] = goldens(OUT / "qwen2-tied-bf16-4x")

    for d in OUT.iterdir():
        if d.is_dir():
            for extra in ["generation_config.json"]:
                (d / extra).unlink(missing_ok=True)
    (OUT / "golden.json").write_text(json.dumps(golden) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)


SMOLLM2_PROMPTS = [
    "What is the capital of France?",
    "Write a short story about a robot who learns to paint.",
    "Explain how a bicycle works, step by step.",
]


def make_smollm2(gguf_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    cases = []
    for text in SMOLLM2_PROMPTS:
        prompt = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                         tokenize=True, return_dict=False)
        if isinstance(prompt, dict) or hasattr(prompt, "input_ids"):
            prompt = prompt["input_ids"]
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(ids, do_sample=False, max_new_tokens=48, attention_mask=torch.ones_like(ids))
        gen = out[0, len(prompt):].tolist()
        answer = tok.decode(gen, skip_special_tokens=True)
        print(f"{text!r} -> {len(gen)} ids: {answer!r}", file=sys.stderr)
        cases.append({"chat": text, "prompt_ids": prompt, "ids": gen, "text": answer})
    assert cases[0]["text"].strip() == "The capital of France is Paris.", cases[0]["text"]
    assert all(len(c["ids"]) >= 32 for c in cases[1:]), [len(c["ids"]) for c in cases]
    eos = model.generation_config.eos_token_id
    head = {"model": gguf_path.name, "eos_token_id": eos, "max_new_tokens": 48}
    text = json.dumps(head)[:-1] + ', "cases": [\n' + ",\n".join(json.dumps(c) for c in cases) + "\n]}\n"
    (OUT / "smollm2_golden.json").write_text(text)


def make_bench_model(out: Path):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                      rms_norm_eps=1e-6, tie_word_embeddings=True,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      bos_token_id=151643, eos_token_id=151645)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    print(f"wrote {out}", file=sys.stderr)


class QuantisingWriter:
    """Passes everything to a GGUFWriter, storing 2-D weights in `qtype` (gguf-py's reference quantiser)."""

    def __init__(self, writer, qtype):
        self.writer, self.qtype = writer, qtype

    def __getattr__(self, name):
        return getattr(self.writer, name)

    def add_tensor(self, name, value):
        import gguf
        from gguf import quants
        if value.ndim == 2 and self.qtype != gguf.GGMLQuantizationType.F32:
            self.writer.add_tensor(name, quants.quantize(value, self.qtype), raw_dtype=self.qtype)
        else:
            self.writer.add_tensor(name, value)


BENCH_TYPES = {"F32": ("F32", "ALL_F32"), "F16": ("F16", "MOSTLY_F16"), "BF16": ("BF16", "MOSTLY_BF16"),
               "Q8_0": ("Q8_0", "MOSTLY_Q8_0"), "Q4_0": ("Q4_0", "MOSTLY_Q4_0"), "Q4_1": ("Q4_1", "MOSTLY_Q4_1")}


def write_bench_gguf(folder: Path, path: Path, kind: str = "F32"):
    """The --bench-model folder as a `qwen2` GGUF that llama.cpp's llama-bench and `atp bench lm` both
    load: every 2-D weight in `kind` (F32, F16, BF16, Q8_0, Q4_0, Q4_1), norms and biases in F32.

    The vocabulary is placeholders (t0, t1, …; one merge): llama-bench feeds random token ids.
    """
    import gguf
    from safetensors.torch import load_file
    cfg = json.loads((folder / "config.json").read_text())
    w = {k: v.float().numpy() for k, v in load_file(folder / "model.safetensors").items()}
    qtype, ftype = BENCH_TYPES[kind]
    writer = QuantisingWriter(gguf_writer(path, "qwen2", "atp bench qwen2-0.5b", cfg,
                                          file_type=getattr(gguf.LlamaFileType, ftype)),
                              getattr(gguf.GGMLQuantizationType, qtype))
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_merges(["t 1"])
    writer.add_bos_token_id(cfg["bos_token_id"])
    writer.add_eos_token_id(cfg["eos_token_id"])
    writer.add_tensor("token_embd.weight", w["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", w[p + "input_layernorm.weight"])
        for part, name in [("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v")]:
            writer.add_tensor(f"blk.{i}.{name}.weight", w[p + f"self_attn.{part}_proj.weight"])
            writer.add_tensor(f"blk.{i}.{name}.bias", w[p + f"self_attn.{part}_proj.bias"])
        add_layer_tail(writer, w, i)
    writer.add_tensor("output_norm.weight", w["model.norm.weight"])
    finish(writer)
    print(f"wrote {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smollm2", type=Path, help="SmolLM2-135M-Instruct GGUF file")
    ap.add_argument("--bench-model", type=Path, help="output folder (outside the repository)")
    ap.add_argument("--bench-gguf", type=Path, nargs=2, metavar=("FOLDER", "OUT"),
                    help="convert a --bench-model folder to a GGUF (for llama-bench and atp bench lm)")
    ap.add_argument("--bench-type", choices=sorted(BENCH_TYPES), default="F32",
                    help="storage of the --bench-gguf file's 2-D weights (default F32)")
    a = ap.parse_args()
    if a.bench_gguf:
        write_bench_gguf(*a.bench_gguf, kind=a.bench_type)
    elif a.bench_model:
        if ROOT in a.bench_model.resolve().parents:
            sys.exit("--bench-model: write it outside the repository")
        make_bench_model(a.bench_model)
    elif a.smollm2:
        make_smollm2(a.smollm2)
    else:
        make_tiny()


if __name__ == "__main__":
    main()
