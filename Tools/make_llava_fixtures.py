#!/usr/bin/env python3
"""Random-weight LLaVA checkpoints in the real Hugging Face layout, and transformers goldens.

Two folders under Tests/Fixtures/llava/ (and, with --sample, the bundled sample model):
  clip-llama   CLIP vision tower (quick_gelu, patch 14, vision_feature_layer -2, strategy default)
               + Llama (GQA, untied), saved in the transformers 4.x layout
               (language_model.model.*, language_model.lm_head.*, vision_tower.vision_model.*,
               top-level rope_theta, torch_dtype).
  siglip-qwen2 SigLIP vision tower (no CLS, strategy full) + Qwen2 (q/k/v bias, GQA, tied),
               saved in the 5.x layout (model.language_model.*, lm_head.*, rope_parameters).
Both use a byte-level BPE tokenizer.json with an added <image> token.

golden.json per folder: for each case (image, query, kept indices or null = all), the prompt ids
with the placeholder expanded to exactly the kept tokens (ascending), the last-position logits of
the prefill, and 8 greedy ids — computed in float32 by building inputs_embeds the way
LlavaModel does (masked scatter of the kept patches' projected features), the kept tokens at their
original positions (Tools/pruned_reference.py).

  python3 Tools/make_llava_fixtures.py [--out DIR] [--sample Samples/models/atp-tiny]

With --bench-model DIR (outside the repository): a random-weight LLaVA of real shapes for
`atp bench ask` — the LLaVA-1.5 vision tower (CLIP ViT-L/14 at 336 px, 576 patches, feature layer -2)
with a Qwen2-0.5B language model, bf16 on disk, plus `clip/`, a CLIP checkpoint sharing that tower.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pruned_reference import pruned_reference  # noqa: E402

from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers
from transformers import (LlavaConfig, LlavaForConditionalGeneration, PreTrainedTokenizerFast,
                          CLIPVisionConfig, SiglipVisionConfig, LlamaConfig, Qwen2Config)
from transformers.models.clip import CLIPImageProcessorPil

ROOT = Path(__file__).resolve().parent.parent
CORPUS = """Is there a person in the aisle? Yes, there is a person near the shelf. No, the aisle is empty.
A forklift carries boxes. The red box is on the left shelf; a green box is on the floor.
What color is the box? It is red. How many people are there? There are two people.
USER: ASSISTANT: describe the image. The camera shows a warehouse with shelves, pallets and boxes.
0123456789 yes no maybe person people box boxes forklift shelf pallet floor left right top bottom
""" * 4


def make_tokenizer(out: Path) -> PreTrainedTokenizerFast:
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator([CORPUS], trainer=trainer)
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", tk.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.save_pretrained(out)
    return fast


def prompt_ids(tok, query: str, k: int) -> list[int]:
    text = "USER: <image>\n" + query + " ASSISTANT:"
    ids = tok(text)["input_ids"]
    img = tok.convert_tokens_to_ids("<image>")
    assert ids.count(img) == 1, ids
    i = ids.index(img)
    return ids[:i] + [img] * k + ids[i + 1:]


def image(size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = 73, 59
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 3) % 256, (yy * 4) % 256, ((xx * yy) // 7) % 256], -1)
    img = np.clip(base + rng.integers(0, 50, size=(h, w, 3)), 0, 255).astype(np.uint8)
    img[10:30, 20:35] = [240, 20, 20]
    return Image.fromarray(img, "RGB")


def randomize(model):
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or "layer_norm" in n and n.endswith("weight") or "layrnorm.weight" in n or "layernorm.weight" in n:
                p.uniform_(0.7, 1.3)
            elif n.endswith(".bias"):
                p.normal_(0, 0.05)
            elif "embedding" in n or "embed_tokens" in n:
                p.normal_(0, 0.5)
            else:
                p.normal_(0, 0.08)


def build(name: str, out_dir: Path, kind: str, layout: str, seed: int, cases_spec) -> None:
    torch.manual_seed(seed)
    folder = out_dir / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tok = make_tokenizer(folder)
    vocab = len(tok)
    image_id = tok.convert_tokens_to_ids("<image>")
    if kind == "clip-llama":
        vision = CLIPVisionConfig(hidden_size=48, intermediate_size=112, num_hidden_layers=3, num_attention_heads=3,
                                  image_size=42, patch_size=14, hidden_act="quick_gelu", projection_dim=24)
        text = LlamaConfig(hidden_size=40, intermediate_size=88, num_hidden_layers=2, num_attention_heads=5,
                           num_key_value_heads=1, head_dim=8, vocab_size=vocab, rope_theta=10000.0,
                           max_position_embeddings=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           tie_word_embeddings=False, rms_norm_eps=1e-5)
        cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                          vision_feature_layer=-2, vision_feature_select_strategy="default",
                          projector_hidden_act="gelu", image_seq_length=9, tie_word_embeddings=False)
    else:
        vision = SiglipVisionConfig(hidden_size=36, intermediate_size=76, num_hidden_layers=2, num_attention_heads=3,
                                    image_size=48, patch_size=16, hidden_act="gelu_pytorch_tanh", vision_use_head=False)
        text = Qwen2Config(hidden_size=32, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=vocab, rope_theta=1000000.0, max_position_embeddings=256,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True,
                           rms_norm_eps=1e-6)
        cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id,
                          vision_feature_layer=-1, vision_feature_select_strategy="full",
                          projector_hidden_act="gelu", image_seq_length=9, tie_word_embeddings=True)
    model = LlavaForConditionalGeneration(cfg).eval()
    randomize(model)
    model.save_pretrained(folder)
    size = cfg.vision_config.image_size
    proc = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    proc.save_pretrained(folder)
    # Rewrite the weight keys into the layout under test (canonical form first).
    from safetensors.torch import load_file, save_file
    st = load_file(folder / "model.safetensors")
    canon = {}
    for k, v in st.items():
        for old, new in [("model.language_model.", "language_model."), ("language_model.model.", "language_model."),
                         ("language_model.lm_head.", "lm_head."), ("model.vision_tower.", "vision_tower."),
                         ("model.multi_modal_projector.", "multi_modal_projector."),
                         ("vision_tower.vision_model.", "vision_tower.")]:
            if k.startswith(old):
                k = new + k[len(old):]
        canon[k] = v.contiguous()
    out = {}
    for k, v in canon.items():
        if layout == "4.x":   # LlavaForConditionalGeneration of transformers 4.x
            k = ("language_model.model." + k[len("language_model."):] if k.startswith("language_model.") else
                 "language_model.lm_head." + k[len("lm_head."):] if k.startswith("lm_head.") else
                 "vision_tower.vision_model." + k[len("vision_tower."):] if k.startswith("vision_tower.") else k)
        else:                 # 5.x: LlavaModel under `model.`, lm_head at the top
            k = ("model.language_model." + k[len("language_model."):] if k.startswith("language_model.") else
                 "model.vision_tower." + k[len("vision_tower."):] if k.startswith("vision_tower.") else
                 "model.multi_modal_projector." + k[len("multi_modal_projector."):] if k.startswith("multi_modal_projector.") else k)
        out[k] = v
    if kind == "siglip-qwen2" and "lm_head.weight" in out:
        del out["lm_head.weight"]   # tied
    save_file(out, folder / "model.safetensors", metadata={"format": "pt"})
    if layout == "4.x":
        c = json.loads((folder / "config.json").read_text())
        c["torch_dtype"] = c.pop("dtype", "float32")
        tc = c["text_config"]
        rp = tc.pop("rope_parameters", None)
        if rp:
            tc["rope_theta"] = rp.get("rope_theta", 10000.0)
        tc["torch_dtype"] = tc.pop("dtype", "float32")
        c["transformers_version"] = "4.45.0"
        (folder / "config.json").write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")

    ref, info = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager",
                                                              output_loading_info=True)
    ref.eval()
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, f"transformers did not load {folder} cleanly: {bad}"
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a.float(), b), "reloaded weights differ"
    img = image(size, seed)
    img.save(folder / "image.png")
    pix = proc(images=img, return_tensors="pt")["pixel_values"].float()
    golden = {"transformers": __import__("transformers").__version__, "torch": torch.__version__, "cases": []}
    with torch.no_grad():
        feats = ref.model.get_image_features(pixel_values=pix)
        feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        feats = feats[0] if isinstance(feats, (list, tuple)) else feats
        feats = feats.reshape(-1, feats.shape[-1])             # [N, D_text]
        n = feats.shape[0]
        for query, kept in cases_spec(n):
            kept_idx = list(range(n)) if kept is None else kept
            ids = prompt_ids(tok, query, len(kept_idx))
            logits, gen_ids = pruned_reference(ref, ids, image_id, feats, kept_idx, 8, None)
            golden["cases"].append({"image": "image.png", "query": query, "kept": kept,
                                    "prompt_ids": ids, "last_logits": logits.tolist(),
                                    "greedy_ids": gen_ids})
    (folder / "golden.json").write_text(json.dumps(golden) + "\n")
    if kind == "clip-llama":
        write_matching_clip(folder / "clip", ref, proc)
    print(f"wrote {folder} ({n} patches)", file=sys.stderr)


def write_matching_clip(out: Path, llava, proc) -> None:
    """A CLIP checkpoint whose vision tower is the LLaVA's own (as LLaVA-1.5 kept CLIP frozen), for `--clip`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from clip_vocab import write_clip_tokenizer_files
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    tok_dir = out / "_tok"
    write_clip_tokenizer_files(tok_dir, num_merges=300)
    tok = CLIPTokenizer.from_pretrained(tok_dir)
    vc = llava.config.vision_config.to_dict()
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=24, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    torch.manual_seed(5)
    clip = CLIPModel(CLIPConfig(vision_config=vc, text_config=text, projection_dim=16)).eval()
    with torch.no_grad():
        missing = clip.vision_model.load_state_dict(llava.model.vision_tower.vision_model.state_dict()
                                                    if hasattr(llava.model.vision_tower, "vision_model")
                                                    else llava.model.vision_tower.state_dict(), strict=True)
    clip.to(llava.dtype).save_pretrained(out)
    tok.save_pretrained(out)
    proc.save_pretrained(out)
    shutil.rmtree(tok_dir)


def uniform(n: int, k: int) -> list[int]:
    return [((2 * j + 1) * n) // (2 * k) for j in range(k)]


def make_bench_model(folder: Path) -> None:
    if ROOT in folder.resolve().parents or folder.resolve() == ROOT:
        sys.exit("--bench-model: write it outside the repository")
    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(folder)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, hidden_act="quick_gelu", projection_dim=768)
    text = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                       rms_norm_eps=1e-6, tie_word_embeddings=True, rope_theta=1000000.0,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-2, vision_feature_select_strategy="default",
                      projector_hidden_act="gelu", image_seq_length=576, tie_word_embeddings=True)
    torch.manual_seed(3)
    model = LlavaForConditionalGeneration(cfg).eval().to(torch.bfloat16)
    model.save_pretrained(folder)
    proc = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    proc.save_pretrained(folder)
    write_matching_clip(folder / "clip", model, proc)
    print(f"wrote {folder}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "Tests" / "Fixtures" / "llava"))
    ap.add_argument("--bench-model", type=Path, help="write a LLaVA-1.5-shaped benchmark folder here instead")
    args = ap.parse_args()
    if args.bench_model:
        make_bench_model(args.bench_model)
        return
    out = Path(args.out)
    cases = lambda n: [("Is there a red box?", None), ("Is there a red box?", uniform(n, 4)),
                       ("What color is the box?", uniform(n, 2))]
    build("clip-llama", out, "clip-llama", "4.x", 11, cases)
    build("siglip-qwen2", out, "siglip-qwen2", "5.x", 12, cases)


if __name__ == "__main__":
    main()
