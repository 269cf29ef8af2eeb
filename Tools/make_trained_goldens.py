#!/usr/bin/env python3
"""Goldens of the trained default model: transformers' greedy answers on a committed check set.

  python3 Tools/make_trained_goldens.py [--model Samples/models/atp-tiny] [--out Tests/Fixtures/trained]

The check set is rendered by the project's renderer (`atp synth --out OUT/check --count 8 --seed 7100`;
seed 7100 is used by no training or validation split) and committed as PNG, so the test does not
depend on the renderer staying the same. For every image and every question of `qa.jsonl`:
  - with all 196 visual tokens: the prompt ids, the last-position logits of the prefill and the
    greedy ids (`generate`, at most 4 new tokens, stopping at EOS);
  - with a `uniform` subset of 49 patches (keep 0.25, DESIGN.md: floor((j + 0.5) * N / K)): the same,
    the kept tokens at their original positions (Tools/pruned_reference.py).
The CLIP side: each question's text embedding (`get_text_features`) and each image's embedding.
Everything in float32 with eager attention, from the float16 files as stored.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pruned_reference import pruned_reference  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "Samples/models/atp-tiny"))
    ap.add_argument("--out", default=str(ROOT / "Tests/Fixtures/trained"))
    ap.add_argument("--atp", default=str(ROOT / ".build/release/atp"))
    ap.add_argument("--count", type=int, default=8)
    args = ap.parse_args()
    from transformers import AutoTokenizer, CLIPModel, LlavaForConditionalGeneration, CLIPTokenizer
    from transformers.models.clip import CLIPImageProcessorPil

    out = Path(args.out)
    check = out / "check"
    if check.exists():
        shutil.rmtree(check)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([args.atp, "synth", "--out", str(check), "--count", str(args.count), "--seed", "7100",
                    "--name", "trained-check"], check=True)
    (check / "truth.jsonl").unlink()
    folder = Path(args.model)
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    proc = CLIPImageProcessorPil.from_pretrained(folder)
    clip = CLIPModel.from_pretrained(folder / "clip", dtype=torch.float32, attn_implementation="eager").eval()
    ctok = CLIPTokenizer.from_pretrained(folder / "clip")
    image_id = model.config.image_token_index
    cases, clip_images = [], {}
    questions = {}
    rows = [json.loads(l) for l in (check / "qa.jsonl").read_text().splitlines() if l.strip()]
    with torch.no_grad():
        for row in rows:
            img = Image.open(check / row["image"]).convert("RGB")
            pix = proc(images=img, return_tensors="pt")["pixel_values"].float()
            feats = model.model.get_image_features(pixel_values=pix)
            feats = getattr(feats, "pooler_output", feats)
            feats = feats[0] if isinstance(feats, (list, tuple)) else feats
            feats = feats.reshape(-1, feats.shape[-1])                       # [N, D_text]
            n = feats.shape[0]
            if row["image"] not in clip_images:
                e = clip.get_image_features(pixel_values=pix)
                clip_images[row["image"]] = getattr(e, "pooler_output", e)[0].tolist()
            if row["question"] not in questions:
                t = ctok([row["question"]], return_tensors="pt")
                e = clip.get_text_features(**t)
                questions[row["question"]] = getattr(e, "pooler_output", e)[0].tolist()
            k = n // 4
            for kept in (None, [int((j + 0.5) * n / k) for j in range(k)]):
                idx = list(range(n)) if kept is None else kept
                ids = tok("USER: <image>\n" + row["question"] + " ASSISTANT:")["input_ids"]
                at = ids.index(image_id)
                ids = ids[:at] + [image_id] * len(idx) + ids[at + 1:]
                last, gen_ids = pruned_reference(model, ids, image_id, feats, idx, 4, tok.eos_token_id)
                logits = last
                text = tok.decode(gen_ids, skip_special_tokens=True)
                cases.append({"image": "check/" + row["image"], "question": row["question"], "answer": row["answer"],
                              "kept": kept, "prompt_ids": ids, "last_logits": logits.tolist(), "greedy_ids": gen_ids,
                              "text": text})
    golden = {"transformers": __import__("transformers").__version__, "torch": torch.__version__,
              "model": "Samples/models/atp-tiny", "cases": cases,
              "clip_text_embeddings": questions, "clip_image_embeddings": clip_images}
    (out / "golden.json").write_text(json.dumps(golden) + "\n")
    correct = sum(c["text"].strip().lower().rstrip(".!?") == c["answer"] for c in cases if c["kept"] is None)
    full = sum(c["kept"] is None for c in cases)
    print(f"wrote {out / 'golden.json'}: {len(cases)} cases; transformers answers {correct}/{full} "
          f"of the check set correctly with all tokens")


if __name__ == "__main__":
    main()
