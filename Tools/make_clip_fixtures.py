#!/usr/bin/env python3
"""Random-weight CLIP checkpoints in the real Hugging Face layout, and their golden outputs.

Writes, for each configuration below, a folder under ``Tests/Fixtures/clip/<name>/`` with
config.json, model.safetensors, tokenizer files and the image processor config exactly as
``save_pretrained`` writes them, plus ``golden.json``: what transformers (float32, eager
attention, the PIL image processor) computes for the test images and queries:
  grid, cls_attention (head-mean CLS->patch attention of the final layer, CLS column dropped),
  image_embedding (get_image_features), text_embedding (get_text_features),
  relevance (cosine of visual_projection(post_layernorm(h_i)) with the text embedding),
  input_ids of each query.

  python3 Tools/make_clip_fixtures.py            # writes Tests/Fixtures/clip/
  python3 Tools/make_clip_fixtures.py --vit-b16 OUT_DIR   # a random ViT-B/16 (224 px) folder for `atp bench encode`
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip_vocab import write_clip_tokenizer_files  # noqa: E402

from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, CLIPProcessor  # noqa: E402
from transformers.models.clip import CLIPImageProcessorPil  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "clip"

QUERIES = [
    "Is there a person in the aisle?",
    "a red box on the shelf",
    "forklift",
    "",
]

CONFIGS = {
    # quick_gelu, patch 14, 3 heads of width 20, F16 weights, 5.x layout (processor saved with CLIPProcessor)
    "tiny-quickgelu-p14-f16": dict(
        vision=dict(hidden_size=60, intermediate_size=148, num_hidden_layers=3, num_attention_heads=3,
                    image_size=56, patch_size=14, hidden_act="quick_gelu"),
        text=dict(hidden_size=36, intermediate_size=92, num_hidden_layers=2, num_attention_heads=3,
                  max_position_embeddings=24, hidden_act="quick_gelu"),
        projection_dim=24, dtype=torch.float16, layout="5.x", seed=1),
    # gelu, patch 16, 6 heads of width 12, F32 weights, 4.x layout (preprocessor_config.json, position_ids buffers)
    "tiny-gelu-p16-f32": dict(
        vision=dict(hidden_size=72, intermediate_size=200, num_hidden_layers=2, num_attention_heads=6,
                    image_size=80, patch_size=16, hidden_act="gelu"),
        text=dict(hidden_size=40, intermediate_size=100, num_hidden_layers=2, num_attention_heads=5,
                  max_position_embeddings=32, hidden_act="gelu"),
        projection_dim=32, dtype=torch.float32, layout="4.x", seed=2),
}


def make_images(size: int, seed: int) -> dict[str, Image.Image]:
    """A square image at the model's size and a non-square one of odd size (goes through resize + crop)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (w, h) in {"square": (size, size), "odd": (97, 61)}.items():
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // max(1, w - 1)), (yy * 255 // max(1, h - 1)), ((xx + yy) * 7) % 256], -1)
        noise = rng.integers(0, 60, size=(h, w, 3))
        img = np.clip(base + noise, 0, 255).astype(np.uint8)
        # a bright rectangle ("object") so attention has something to find
        img[h // 4: h // 2, w // 3: w // 3 + w // 5] = [250, 30, 30]
        out[name] = Image.fromarray(img, "RGB")
    return out


def build(name: str, spec: dict, out_dir: Path) -> None:
    torch.manual_seed(spec["seed"])
    folder = out_dir / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tok_dir = folder / "_tok"
    write_clip_tokenizer_files(tok_dir, num_merges=1000)
    vocab_size = len(json.loads((tok_dir / "vocab.json").read_text()))
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    text = dict(spec["text"], vocab_size=vocab_size,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    config = CLIPConfig(text_config=text, vision_config=spec["vision"], projection_dim=spec["projection_dim"])
    model = CLIPModel(config).eval()
    # Non-trivial layer norms and biases so that parity tests exercise them.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("layer_norm1.weight") or n.endswith("layer_norm2.weight") or "layrnorm.weight" in n or "layernorm.weight" in n:
                p.uniform_(0.6, 1.4)
            elif n.endswith(".bias"):
                p.normal_(0, 0.05)
            elif "class_embedding" in n or "position_embedding" in n:
                p.normal_(0, 0.2)
    model.to(spec["dtype"]).save_pretrained(folder)
    size = spec["vision"]["image_size"]
    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    if spec["layout"] == "5.x":
        CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    else:
        processor.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        # a 4.x-era folder with the slow tokenizer files only
        if (folder / "tokenizer.json").exists():
            (folder / "tokenizer.json").unlink()
        for f in ["vocab.json", "merges.txt", "special_tokens_map.json"]:
            if (tok_dir / f).exists():
                shutil.copy(tok_dir / f, folder / f)
        # Older saves carried the position_ids buffers: add them as 4.x did (I64), to be ignored.
        from safetensors.torch import load_file, save_file
        st = load_file(folder / "model.safetensors")
        st["text_model.embeddings.position_ids"] = torch.arange(text["max_position_embeddings"]).unsqueeze(0)
        st["vision_model.embeddings.position_ids"] = torch.arange((size // spec["vision"]["patch_size"]) ** 2 + 1).unsqueeze(0)
        save_file(st, folder / "model.safetensors", metadata={"format": "pt"})
        cfg = json.loads((folder / "config.json").read_text())
        cfg["torch_dtype"] = cfg.pop("dtype", "float32")
        cfg["transformers_version"] = "4.44.2"
        (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(tok_dir)

    # Goldens: reload in float32 as a user would.
    ref = CLIPModel.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    tok = CLIPTokenizer.from_pretrained(folder)
    proc = CLIPImageProcessorPil.from_pretrained(folder)
    images = make_images(size, spec["seed"])
    golden = {"transformers": __import__("transformers").__version__, "torch": torch.__version__,
              "image_processor": type(proc).__name__, "cases": []}
    with torch.no_grad():
        for img_name, img in images.items():
            img.save(folder / f"image-{img_name}.png")
            pix = proc(images=img, return_tensors="pt")["pixel_values"].float()
            vout = ref.vision_model(pixel_values=pix, output_attentions=True, output_hidden_states=True)
            attn = vout.attentions[-1][0]                     # [heads, T, T]
            cls_att = attn.mean(0)[0, 1:]                      # [N]
            image_emb = ref.get_image_features(pixel_values=pix)
            image_emb = image_emb.pooler_output if hasattr(image_emb, "pooler_output") else image_emb
            last = vout.last_hidden_state[0, 1:]               # [N, D]
            patch_emb = ref.visual_projection(ref.vision_model.post_layernorm(last))
            g = size // spec["vision"]["patch_size"]
            for q in QUERIES:
                ids = tok(q, truncation=True, max_length=text["max_position_embeddings"])["input_ids"]
                t = ref.get_text_features(input_ids=torch.tensor([ids]))
                t = t.pooler_output if hasattr(t, "pooler_output") else t
                rel = torch.nn.functional.cosine_similarity(patch_emb, t, dim=-1)
                golden["cases"].append({
                    "image": f"image-{img_name}.png", "query": q, "input_ids": ids,
                    "grid": [g, g],
                    "pixel_values_sum": float(pix.double().sum()),
                    "cls_attention": cls_att.tolist(),
                    "image_embedding": image_emb[0].tolist(),
                    "text_embedding": t[0].tolist(),
                    "relevance": rel.tolist(),
                })
    (folder / "golden.json").write_text(json.dumps(golden) + "\n")
    print(f"wrote {folder}", file=sys.stderr)


def vit_b16(out: Path) -> None:
    """A random-weight CLIP ViT-B/16 (224 px) folder with real shapes, for `atp bench encode`."""
    torch.manual_seed(0)
    tok_dir = out / "_tok"
    write_clip_tokenizer_files(tok_dir, num_merges=None)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    config = CLIPConfig(vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                           image_size=224, patch_size=16, hidden_act="quick_gelu"),
                        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
                        projection_dim=512)
    CLIPModel(config).save_pretrained(out)
    proc = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=proc, tokenizer=tokenizer).save_pretrained(out)
    shutil.rmtree(tok_dir)
    make_images(224, 0)["odd"].save(out / "image.png")
    print(f"wrote {out}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vit-b16", metavar="OUT_DIR", help="write a random ViT-B/16 CLIP folder instead of the fixtures")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if args.vit_b16:
        vit_b16(Path(args.vit_b16))
        return
    for name, spec in CONFIGS.items():
        build(name, spec, Path(args.out))


if __name__ == "__main__":
    main()
