#!/usr/bin/env python3
"""Prefill and decode speed of `atp bench lm` against llama.cpp's `llama-bench`, on the same GGUF file
and thread count, in alternating rounds (this machine kind is shared: its memory bandwidth drifts by
±25 % within minutes, so only interleaved runs give a fair ratio). Prints each round and the medians.

  python3 Tools/compare_llamacpp.py --llama-bench PATH/llama-bench --model qwen2-0.5b-f32.gguf \\
      [--atp .build/release/atp] [--rounds 5] [--threads 2]

llama-bench is built from source outside the repository (see README, "LLM speed"); the F32 GGUF comes
from `Tools/make_llama_fixtures.py --bench-model DIR` then `--bench-gguf DIR FILE`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def llama_bench(exe: str, model: str, threads: int) -> tuple[float, float]:
    out = subprocess.run([exe, "-m", model, "-t", str(threads), "-p", "512", "-n", "128", "-r", "1", "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] == 512 and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] == 128 and r["n_prompt"] == 0)
    return pp, tg


def atp_bench(exe: str, model: str, threads: int) -> tuple[float, float]:
    out = subprocess.run([exe, "bench", "lm", "--model", model, "--threads", str(threads), "--repeats", "1",
                          "--prompt-tokens", "512", "--gen-tokens", "128", "--json"],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return j["prefill_tok_s"], j["decode_tok_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--model", required=True, help="GGUF file both load")
    ap.add_argument("--atp", default=".build/release/atp")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rows = []
    for i in range(a.rounds):
        lp, lt = llama_bench(a.llama_bench, a.model, a.threads)
        ap_, at = atp_bench(a.atp, a.model, a.threads)
        rows.append((lp, lt, ap_, at))
        print(f"round {i + 1}: llama.cpp pp512 {lp:6.1f} tg128 {lt:5.2f} | atp pp512 {ap_:6.1f} tg128 {at:5.2f} tok/s",
              file=sys.stderr, flush=True)
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    ratios_pp = [r[2] / r[0] for r in rows]
    ratios_tg = [r[3] / r[1] for r in rows]
    print(json.dumps({
        "rounds": a.rounds, "threads": a.threads,
        "llama_cpp": {"pp512": med[0], "tg128": med[1]},
        "atp": {"pp512": med[2], "tg128": med[3]},
        "ratio_pp512": {"median": statistics.median(ratios_pp), "min": min(ratios_pp), "max": max(ratios_pp)},
        "ratio_tg128": {"median": statistics.median(ratios_tg), "min": min(ratios_tg), "max": max(ratios_tg)},
    }))


if __name__ == "__main__":
    main()
