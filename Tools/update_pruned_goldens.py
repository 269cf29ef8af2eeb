#!/usr/bin/env python3
"""Recompute the pruned cases of the committed LLaVA goldens from the committed checkpoints.

  python3 Tools/update_pruned_goldens.py

Cases with `kept: null` (every token) are recomputed too and must equal what is stored (a check that
this reference reproduces the one that wrote the file); cases with kept indices get their logits and
greedy ids from `pruned_reference` (kept tokens keep their original positions). Everything in float32
with eager attention.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pruned_reference import pruned_reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# golden file, model folder, image folder, max new tokens, stop at EOS
SETS = [("Tests/Fixtures/llava/clip-llama/golden.json", "Tests/Fixtures/llava/clip-llama", "Tests/Fixtures/llava/clip-llama", 8, False),
        ("Tests/Fixtures/llava/siglip-qwen2/golden.json", "Tests/Fixtures/llava/siglip-qwen2", "Tests/Fixtures/llava/siglip-qwen2", 8, False),
        ("Tests/Fixtures/trained/golden.json", "Samples/models/atp-tiny", "Tests/Fixtures/trained", 4, True)]


def main() -> None:
    from transformers import AutoImageProcessor, AutoTokenizer, LlavaForConditionalGeneration
    for golden_path, model_dir, image_dir, max_new, stop in SETS:
        gp = ROOT / golden_path
        golden = json.loads(gp.read_text())
        model = LlavaForConditionalGeneration.from_pretrained(ROOT / model_dir, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
        tok = AutoTokenizer.from_pretrained(ROOT / model_dir)
        proc = AutoImageProcessor.from_pretrained(ROOT / model_dir)
        image_id = model.config.image_token_index
        feats_of, worst, changed = {}, 0.0, 0
        for case in golden["cases"]:
            if case["image"] not in feats_of:
                img = Image.open(ROOT / image_dir / case["image"]).convert("RGB")
                pix = proc(images=img, return_tensors="pt")["pixel_values"].float()
                with torch.no_grad():
                    f = model.model.get_image_features(pixel_values=pix)
                f = getattr(f, "pooler_output", f)
                f = f[0] if isinstance(f, (list, tuple)) else f
                feats_of[case["image"]] = f.reshape(-1, f.shape[-1])
            feats = feats_of[case["image"]]
            kept = case["kept"] if case["kept"] is not None else list(range(feats.shape[0]))
            last, gen = pruned_reference(model, case["prompt_ids"], image_id, feats, kept, max_new,
                                         tok.eos_token_id if stop else None)
            if case["kept"] is None:
                d = (last - torch.tensor(case["last_logits"])).abs().max().item()
                worst = max(worst, d)
                assert gen == case["greedy_ids"][-len(gen):] or gen == case["greedy_ids"], \
                    f"{golden_path}: full case {case['query']!r}: greedy {gen} != stored {case['greedy_ids']}"
            else:
                changed += gen != case["greedy_ids"]
                case["last_logits"] = last.tolist()
                case["greedy_ids"] = gen
                if "text" in case:
                    case["text"] = tok.decode(gen, skip_special_tokens=True)
        assert worst < 1e-4, f"{golden_path}: full cases differ from the stored ones by {worst}"
        golden["pruned_positions"] = "original"
        gp.write_text(json.dumps(golden) + "\n")
        print(f"{golden_path}: full cases reproduce (max |Δlogit| {worst:.2e}); "
              f"{sum(c['kept'] is not None for c in golden['cases'])} pruned cases rewritten, {changed} with new greedy ids")


if __name__ == "__main__":
    main()
