#!/usr/bin/env python3
"""Train `Samples/models/atp-easyvqa`: a small CLIP and a small LLaVA on easy-VQA (the recipe of train_default.py).

  python3 Tools/export_easy_vqa.py --wheel easy_vqa-1.0-py3-none-any.whl --out /tmp/evqa-data
  python3 Tools/train_easy_vqa.py --data /tmp/evqa-data --out Samples/models/atp-easyvqa --seed 0

Reads DATA/easy-vqa-train (fit) and DATA/easy-vqa-val (every choice, and the reported accuracy); it never
opens easy-vqa-test. The 64 x 64 images are up-sampled by the model's own image processor (PIL bicubic to
128 x 128, CLIP mean/std; the same arrays the saved preprocessor_config.json gives, checked at start-up).
 1. CLIP (HF `CLIPModel`): a ViT (128 px, patch 16 -> 8 x 8 = 64 patches) and a small text tower on the
    reduced CLIP BPE (Tools/clip_vocab.py), trained contrastively on train images and captions of their
    one shape ("a blue rectangle"; images with the same shape and colour are positives of each other),
    plus auxiliary heads that are not saved: shape and colour from the image embedding and from the
    mean of layer -2 (what LLaVA reads), and each patch's colour ("none" or the shape's) from its
    projected final state P_v LN_post(h_i) (the gate's space) and from layer -2. Labels: the shape from
    the image's questions (what / yes-no, negations resolved), the colour from the image's pixels (the
    shapes are drawn in 8 pure palette colours; checked against the questions). Random horizontal flips.
 2. LLaVA (HF `LlavaForConditionalGeneration`): that vision tower FROZEN (saved byte-identical to clip/'s,
    checked), layer -2 without CLS, a 2-layer GELU projector and a small Llama LM with its own byte-level
    BPE tokenizer.json. Prompt `USER: <image>\\n{question} ASSISTANT:`, target ` {answer}</s>`. Trained on
    ALL 64 visual tokens (no token dropout); the questions of an image are packed after one shared visual
    prefix (train_default.pack, checked against the unpacked model).
 3. Saves float16 safetensors, reloads the saved folder in float32 and answers every validation question
    with transformers' greedy `generate`; writes train_report.json and MODEL_CARD.md.
Progress lines with an ETA go to stderr. `--quick` is a small pilot of the same recipe.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip_vocab import write_clip_tokenizer_files  # noqa: E402
import train_default  # noqa: E402
from train_default import (Eta, check_packing, frame_items, frozen_tower_llava, lm_train_step, log, train_lm_tokenizer,  # noqa: E402
                           prompt_parts, teacher_forced_accuracy, to_pixels)

ROOT = Path(__file__).resolve().parent.parent
SIZE, PATCH = 128, 16
GRID = SIZE // PATCH                       # 8 x 8 = 64 patches
CLIP_MERGES = 1000
SHAPES = ["circle", "rectangle", "triangle"]
COLORS = ["red", "green", "blue", "black", "gray", "teal", "brown", "yellow"]
# easy-VQA draws its shapes in these pure colours (CSS names); anti-aliased edges blend with the background.
PALETTE = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0),
           "gray": (128, 128, 128), "teal": (0, 128, 128), "brown": (165, 42, 42), "yellow": (255, 255, 0)}
REFERENCE = ROOT / "Samples/models/atp-tiny"   # the file set the Swift loader is known to read
T_START = time.time()


# ---------------------------------------------------------------- data

def load_split(folder: Path):
    """(names, 64 px uint8 [N,64,64,3], processor-resized uint8 [N,SIZE,SIZE,3], per image [(type, q, a)])."""
    by_image: dict[str, list] = defaultdict(list)
    for line in (folder / "qa.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            by_image[d["image"]].append((d["type"], d["question"], d["answer"]))
    names = sorted(by_image, key=lambda n: (len(n), n))
    pil = [Image.open(folder / n).convert("RGB") for n in names]
    small = np.stack([np.asarray(im) for im in pil])
    big = np.stack([np.asarray(im.resize((SIZE, SIZE), Image.BICUBIC)) for im in pil])
    return names, small, big, [by_image[n] for n in names]


def attribute_from_questions(qas, values, other) -> int:
    """The index in `values` (SHAPES or COLORS) of the image's attribute fixed by its questions (negations
    resolved; `other` is the other attribute's list), -100 when they do not fix it."""
    cand = set(values)
    for _, q, a in qas:
        words = re.findall(r"[a-z]+", q)
        named = [w for w in words if w in values]
        if a in values:
            cand &= {a}
        elif a in ("yes", "no") and named:
            negated = "not" in words or q.startswith("is no ")
            if (a == "yes") != negated:
                cand &= {named[0]}
            else:
                cand.discard(named[0])
        elif a in other and named:              # "what color is the circle?" / "what is the blue shape?"
            cand &= {named[0]}
    assert cand, f"contradictory questions about {values}: {qas}"
    return values.index(cand.pop()) if len(cand) == 1 else -100


def shape_from_questions(qas) -> int:
    return attribute_from_questions(qas, SHAPES, COLORS)


def color_from_questions(qas) -> int:
    return attribute_from_questions(qas, COLORS, SHAPES)


def pixel_labels(small: np.ndarray):
    """Per image the palette colour with the most exactly matching pixels, and per patch
    (8 x 8 source pixels) its colour label: 1 + colour with >= 4 such pixels (or the image's patch with the
    most), 0 with none, -100 between."""
    pal = np.array([PALETTE[c] for c in COLORS], dtype=np.int16)               # [8, 3]
    match = (small[:, :, :, None, :].astype(np.int16) == pal[None, None, None]).all(-1)   # [N, 64, 64, 8]
    color = match.sum((1, 2)).argmax(1)
    cell = small.shape[1] // GRID
    mine = match[np.arange(len(small)), :, :, color]                            # [N, 64, 64]
    counts = mine.reshape(len(small), GRID, cell, GRID, cell).sum((2, 4)).reshape(len(small), GRID * GRID)
    fg = (counts >= 4) | (counts == counts.max(1, keepdims=True))       # tiny shapes: at least their main patch
    patch = np.where(fg, color[:, None] + 1, np.where(counts == 0, 0, -100))
    return color, patch


def labels(split, name: str):
    _, small, _, qas = split
    color, patch = pixel_labels(small)
    shape = np.array([shape_from_questions(q) for q in qas])
    qcolor = np.array([color_from_questions(q) for q in qas])
    known = qcolor >= 0
    agree = float((qcolor[known] == color[known]).mean())
    log(f"{name}: shape known from the questions for {int((shape >= 0).sum())}/{len(shape)} images; colour from "
        f"pixels agrees with the questions on {agree:.4f} of the {int(known.sum())} images they fix")
    assert agree > 0.999, "pixel colour labels disagree with the questions"
    # Per patch the shape too: 1 + shape where the patch shows the shape, 0 on background, -100 unknown.
    pshape = np.where(patch > 0, np.where(shape[:, None] >= 0, shape[:, None] + 1, -100), patch)
    return {"shape": torch.from_numpy(shape), "color": torch.from_numpy(color), "patch": torch.from_numpy(patch),
            "pshape": torch.from_numpy(pshape)}


def yes_no_templates(qas):
    """The yes/no templates of the training questions: (question with {} for the attribute, kind, negated)."""
    out = set()
    for per in qas:
        for t, q, _ in per:
            if t != "yes/no":
                continue
            words = re.findall(r"[a-z]+", q)
            attr = [w for w in words if w in SHAPES or w in COLORS]
            assert len(attr) == 1, q
            out.add((re.sub(rf"\b{attr[0]}\b", "{}", q), "shape" if attr[0] in SHAPES else "color",
                     "not" in words or q.startswith("is no ")))
    return sorted(out)


def yes_no_answer(kind: str, negated: bool, word: str, shape: int, color: int) -> str:
    present = word == (SHAPES[shape] if kind == "shape" else COLORS[color])
    return "yes" if present != negated else "no"


def extra_yes_no(templates, shape: int, color: int, count: int, rng: random.Random):
    """`count` more yes/no questions about one training image, built from the training templates and the
    image's labels, half of them naming its own shape or colour (the data's own are mostly "no" for the
    positive forms and "yes" for the negated ones, a prior that an LM learns long before it learns to look)."""
    out = []
    usable = [t for t in templates if t[1] == "color" or shape >= 0]
    for _ in range(count):
        tmpl, kind, neg = rng.choice(usable)
        truth = SHAPES[shape] if kind == "shape" else COLORS[color]
        word = truth if rng.random() < 0.5 else rng.choice([w for w in (SHAPES if kind == "shape" else COLORS) if w != truth])
        out.append(("yes/no", tmpl.format(word), yes_no_answer(kind, neg, word, shape, color)))
    return out


def flip_patch(patch: torch.Tensor) -> torch.Tensor:
    return patch.view(-1, GRID, GRID).flip(-1).reshape(-1, GRID * GRID)


def caption(shape: int, color: int, rng: random.Random) -> str:
    c = COLORS[color]
    thing = f"{c} {SHAPES[shape]}" if shape >= 0 else f"{c} shape"
    return rng.choice(["a {}", "a {}", "a picture of a {}", "an image of a {}", "a {} on a plain background",
                       "one {}", "{}"]).format(thing)


# ---------------------------------------------------------------- CLIP

def clip_configs(vocab: int, bos: int, eos: int):
    return train_default.clip_configs(vocab, bos, eos, size=SIZE, patch=PATCH, text_layers=2, text_positions=32)


def cosine(opt, total: int, warm: int):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))


class ClipHeads(torch.nn.Module):
    """Auxiliary heads (not saved)."""

    def __init__(self, dv: int, dp: int):
        super().__init__()
        self.img = torch.nn.ModuleDict({"shape": torch.nn.Linear(dp, 3), "color": torch.nn.Linear(dp, 8)})
        self.l2 = torch.nn.ModuleDict({"shape": torch.nn.Linear(dv, 3), "color": torch.nn.Linear(dv, 8)})
        self.patch_final = torch.nn.Linear(dp, 9)
        self.patch_l2 = torch.nn.Linear(dv, 9)
        self.pshape_final = torch.nn.Linear(dp, 4)
        self.pshape_l2 = torch.nn.Linear(dv, 4)


def clip_forward(model, heads, pix):
    vout = model.vision_model(pixel_values=pix, output_hidden_states=True)
    img = model.visual_projection(vout.pooler_output)
    patches = model.visual_projection(model.vision_model.post_layernorm(vout.last_hidden_state[:, 1:]))
    l2 = vout.hidden_states[-2][:, 1:]
    out = {f"img_{k}": h(img) for k, h in heads.img.items()}
    out |= {f"l2_{k}": h(l2.mean(1)) for k, h in heads.l2.items()}
    out["patch_final"] = heads.patch_final(patches)
    out["patch_l2"] = heads.patch_l2(l2)
    out["pshape_final"] = heads.pshape_final(patches)
    out["pshape_l2"] = heads.pshape_l2(l2)
    return img, out


def aux_loss(out, lab, idx, flip):
    shape, color = lab["shape"][idx], lab["color"][idx]
    loss = 0.0
    for k in ("img", "l2"):
        loss = loss + F.cross_entropy(out[f"{k}_shape"].float(), shape, ignore_index=-100) \
            + F.cross_entropy(out[f"{k}_color"].float(), color)
    for name, classes in (("patch", 9), ("pshape", 4)):
        lab_p = lab[name][idx].clone()
        if flip.any():
            lab_p[flip] = flip_patch(lab_p[flip])
        for k in ("final", "l2"):
            loss = loss + F.cross_entropy(out[f"{name}_{k}"].float().reshape(-1, classes), lab_p.reshape(-1),
                                          ignore_index=-100)
    return loss / 8


def train_clip(args, clip_dir: Path, train, tlab, val, vlab, report):
    from transformers import CLIPModel, CLIPTokenizer
    t0 = time.time()
    write_clip_tokenizer_files(clip_dir, num_merges=CLIP_MERGES)
    tok = CLIPTokenizer.from_pretrained(str(clip_dir))
    cfg = clip_configs(len(tok), tok.bos_token_id, tok.eos_token_id)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    model = CLIPModel(cfg)
    heads = ClipHeads(cfg.vision_config.hidden_size, cfg.projection_dim)
    imgs = train[2]
    n = len(imgs)
    key = tlab["shape"] * 8 + tlab["color"]            # unknown shape (-100) gives its own keys per colour
    rng = random.Random(args.seed)
    steps_per_epoch = n // args.clip_batch
    total = steps_per_epoch * args.clip_epochs
    params = list(model.named_parameters()) + [("heads." + k, p) for k, p in heads.named_parameters()]
    decay = [p for k, p in params if p.ndim >= 2 and "embedding" not in k]
    no_decay = [p for k, p in params if not (p.ndim >= 2 and "embedding" not in k)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.clip_lr, betas=(0.9, 0.98))
    sched = cosine(opt, total, max(1, total // 10))
    log(f"CLIP: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {n} images, "
        f"{total} steps of {args.clip_batch}")
    eta = Eta("clip", total)
    g = torch.Generator().manual_seed(args.seed)
    step = 0
    model.train()
    for epoch in range(args.clip_epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(steps_per_epoch):
            idx = perm[s * args.clip_batch:(s + 1) * args.clip_batch]
            flip = torch.rand(len(idx), generator=g) < 0.5
            batch = imgs[idx.numpy()].copy()
            batch[flip.numpy()] = batch[flip.numpy()][:, :, ::-1]
            pix = to_pixels(batch)
            caps = [caption(int(tlab["shape"][i]), int(tlab["color"][i]), rng) for i in idx.tolist()]
            t = tok(caps, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                img, out = clip_forward(model, heads, pix)
                txt = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
            txt = getattr(txt, "pooler_output", txt)
            aux = aux_loss(out, tlab, idx, flip)
            img = F.normalize(img.float(), dim=-1)
            txt = F.normalize(txt.float(), dim=-1)
            logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
            k = key[idx]
            target = (k[:, None] == k[None, :]).float()
            target = target / target.sum(1, keepdim=True)
            contrastive = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                                 + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())
            loss = contrastive + aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            sched.step()
            step += 1
            eta.step(step, f"contrastive {contrastive.item():.3f} aux {aux.item():.3f} "
                           f"scale {model.logit_scale.exp().item():.1f}")
        if epoch + 1 < args.clip_epochs and (epoch + 1) % 3 == 0:
            clip_validation(model, tok, heads, val, vlab)
            model.train()
    metrics = clip_validation(model, tok, heads, val, vlab)
    report["clip"] = {"params": sum(p.numel() for p in model.parameters()), "steps": total, "batch": args.clip_batch,
                      "epochs": args.clip_epochs, "lr": args.clip_lr, "val": metrics,
                      "seconds": round(time.time() - t0, 1)}
    from transformers.models.clip import CLIPImageProcessorPil
    model.to(torch.float16).save_pretrained(clip_dir)
    model.to(torch.float32)
    CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}).save_pretrained(clip_dir)
    return model


@torch.no_grad()
def clip_validation(model, tok, heads, val, vlab):
    """Image -> caption retrieval among the 24 "a {colour} {shape}" captions (images whose shape is known),
    and the auxiliary heads' accuracy."""
    model.eval()
    classes = [(s, c) for s in range(3) for c in range(8)]
    t = tok([f"a {COLORS[c]} {SHAPES[s]}" for s, c in classes], padding=True, return_tensors="pt")
    txt = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
    txt = F.normalize(getattr(txt, "pooler_output", txt), dim=-1)
    imgs = val[2]
    hits, n_known = 0, 0
    right = Counter()
    for s in range(0, len(imgs), 128):
        sl = slice(s, min(s + 128, len(imgs)))
        img, out = clip_forward(model, heads, to_pixels(imgs[sl]))
        shape, color = vlab["shape"][sl], vlab["color"][sl]
        known = shape >= 0
        pred = (F.normalize(img, dim=-1) @ txt.T).argmax(1)
        truth = shape * 8 + color
        hits += int(((pred == truth) & known).sum())
        n_known += int(known.sum())
        for k in ("img", "l2"):
            right[f"{k}_shape"] += int(((out[f"{k}_shape"].argmax(1) == shape) & known).sum())
            right[f"{k}_color"] += int((out[f"{k}_color"].argmax(1) == color).sum())
        for name in ("patch", "pshape"):
            lab_p = vlab[name][sl]
            ok = lab_p > 0                                      # accuracy on the patches that show the shape
            for k in ("final", "l2"):
                right[f"{name}_{k}"] += int(((out[f"{name}_{k}"].argmax(-1) == lab_p) & ok).sum())
    n = len(imgs)
    denom = {"patch": int((vlab["patch"] > 0).sum()), "pshape": int((vlab["pshape"] > 0).sum())}
    m = {"retrieval_top1_of_24": round(hits / n_known, 4)}
    for k, v in sorted(right.items()):
        d = denom.get(k.split("_")[0]) or (n_known if k.endswith("shape") else n)
        m[k] = round(v / d, 4)
    log(f"CLIP validation: {m}")
    return m


# ---------------------------------------------------------------- LM tokenizer and LLaVA

def make_lm_tokenizer(out: Path, qas):
    """train_default's LM tokenizer, trained on easy-VQA's own questions and answers."""
    return train_lm_tokenizer(sorted({f"USER: \n{q} ASSISTANT: {a}" for per in qas for _, q, a in per}) * 4, out)


def llava_config(clip_cfg, tok, image_id: int):
    from transformers import LlamaConfig, LlavaConfig
    text = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                       num_key_value_heads=2, head_dim=32, vocab_size=len(tok), max_position_embeddings=512,
                       rope_theta=10000.0, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       tie_word_embeddings=False, rms_norm_eps=1e-5)
    return LlavaConfig(vision_config=clip_cfg.vision_config, text_config=text, image_token_index=image_id,
                       vision_feature_layer=-2, vision_feature_select_strategy="default",
                       projector_hidden_act="gelu", image_seq_length=GRID * GRID, tie_word_embeddings=False)


@torch.no_grad()
def vision_features(tower, imgs: np.ndarray, label: str) -> torch.Tensor:
    """Layer -2 hidden states without CLS, [N, 64, Dv], float16 (the frozen tower's output)."""
    out = []
    eta = Eta(label, len(imgs))
    for s in range(0, len(imgs), 128):
        hs = tower(pixel_values=to_pixels(np.ascontiguousarray(imgs[s:s + 128])), output_hidden_states=True)
        out.append(hs.hidden_states[-2][:, 1:].to(torch.float16))
        eta.step(min(s + 128, len(imgs)))
    return torch.cat(out)


def train_llava(args, out: Path, clip_model, train, tlab, val, report):
    from transformers.models.clip import CLIPImageProcessorPil
    t0 = time.time()
    tok = make_lm_tokenizer(out, train[3])
    image_id = tok.convert_tokens_to_ids("<image>")
    llava = frozen_tower_llava(llava_config(clip_model.config, tok, image_id), clip_model, args.seed + 1)
    prefix, _ = prompt_parts(tok, "x", image_id)
    imgs, qas = train[2], train[3]
    templates = yes_no_templates(qas)
    for i, per in enumerate(qas):                      # the derived answers are the data's own
        for t, q, a in per:
            if t == "yes/no":
                tmpl = [x for x in templates if re.fullmatch(re.escape(x[0]).replace(r"\{\}", "([a-z]+)"), q)]
                assert len(tmpl) == 1, q
                _, kind, neg = tmpl[0]
                if kind == "color" or tlab["shape"][i] >= 0:
                    word = re.fullmatch(re.escape(tmpl[0][0]).replace(r"\{\}", "([a-z]+)"), q).group(1)
                    assert yes_no_answer(kind, neg, word, int(tlab["shape"][i]), int(tlab["color"][i])) == a, (q, a)
    log(f"{len(templates)} yes/no templates; {args.extra_yes_no} extra balanced yes/no questions per image and step")
    qrng = random.Random(args.seed + 3)
    check_packing(llava, tok, image_id, imgs, qas, prefix)
    tower = llava.model.vision_tower.eval()
    feats = vision_features(tower, imgs, "features (train)")
    feats_flip = vision_features(tower, imgs[:, :, ::-1], "features (train, flipped)")
    vfeats = vision_features(tower, val[2], "features (val)")
    trainable = [p for p in llava.parameters() if p.requires_grad]
    log(f"LLaVA: {sum(p.numel() for p in llava.parameters()) / 1e6:.2f} M parameters "
        f"({sum(p.numel() for p in trainable) / 1e6:.2f} M trained), {len(imgs)} images, "
        f"{sum(len(q) for q in qas)} questions, vocabulary {len(tok)}")
    n = len(imgs)
    steps_per_epoch = n // args.lm_batch
    total = steps_per_epoch * args.lm_epochs
    opt = torch.optim.AdamW(trainable, lr=args.lm_lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = cosine(opt, total, max(1, total // 20))
    cache = {}
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eta = Eta("llava", total)
    step = 0
    g = torch.Generator().manual_seed(args.seed + 2)
    history = []
    llava.train()
    for epoch in range(args.lm_epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(steps_per_epoch):
            idx = perm[s * args.lm_batch:(s + 1) * args.lm_batch]
            flip = (torch.rand(len(idx), generator=g) < 0.5)[:, None, None]
            f = torch.where(flip, feats_flip[idx], feats[idx])
            items = [frame_items(tok, qas[i] + extra_yes_no(templates, int(tlab["shape"][i]), int(tlab["color"][i]),
                                                            args.extra_yes_no, qrng), image_id, cache)
                     for i in idx.tolist()]
            loss = lm_train_step(llava, opt, sched, trainable, items, prefix, f, pad, args.bf16)
            step += 1
            eta.step(step, f"loss {loss.item():.4f}")
        acc = teacher_forced_accuracy(llava, tok, image_id, vfeats, val[3], prefix, pad, cache)
        history.append(acc)
        log(f"epoch {epoch + 1}/{args.lm_epochs}: validation (teacher-forced answers) {acc}")
    llava.eval()
    report["llava"] = {"params": sum(p.numel() for p in llava.parameters()),
                       "trained_params": sum(p.numel() for p in trainable), "steps": total, "batch": args.lm_batch,
                       "epochs": args.lm_epochs, "lr": args.lm_lr, "vocab": len(tok),
                       "extra_yes_no_per_image_step": args.extra_yes_no,
                       "val_teacher_forced_by_epoch": history, "seconds": round(time.time() - t0, 1)}
    llava.to(torch.float16).save_pretrained(out)
    CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}).save_pretrained(out)


@torch.no_grad()
def greedy_eval(folder: Path, data: Path, limit: int | None, report, preds_path: Path | None):
    """The saved folder, reloaded in float32 (eager attention) with its own tokenizer and image processor,
    answering the data folder's questions with greedy `generate`, scored as DESIGN.md says."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration
    from transformers.models.clip import CLIPImageProcessorPil
    t0 = time.time()
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    proc = CLIPImageProcessorPil.from_pretrained(folder)
    image_id = model.config.image_token_index
    n = model.config.image_seq_length
    rows = [json.loads(x) for x in (data / "qa.jsonl").read_text().splitlines() if x.strip()]
    if limit:
        rows = rows[:limit]
    right, count = Counter(), Counter()
    eta = Eta(f"greedy eval ({data.name})", len(rows))
    pix_cache: dict[str, torch.Tensor] = {}
    lines = []
    for k, r in enumerate(rows):
        if r["image"] not in pix_cache:
            pix_cache.clear()
            pix_cache[r["image"]] = proc(images=Image.open(data / r["image"]).convert("RGB"),
                                         return_tensors="pt")["pixel_values"]
        pre, suf = prompt_parts(tok, r["question"], image_id)
        ids = torch.tensor([pre + [image_id] * n + suf])
        out = model.generate(input_ids=ids, pixel_values=pix_cache[r["image"]], max_new_tokens=8, do_sample=False,
                             pad_token_id=tok.eos_token_id)
        raw = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        text = raw.strip().lower()
        if text[-1:] in ".!?":
            text = text[:-1]
        ok = text == r["answer"].lower()
        right[r["type"]] += ok
        count[r["type"]] += 1
        lines.append(json.dumps({"image": r["image"], "question": r["question"], "answer": r["answer"],
                                 "type": r["type"], "generated": raw, "correct": ok}))
        eta.step(k + 1)
    res = {t: round(right[t] / count[t], 4) for t in sorted(count)}
    res["all"] = round(sum(right.values()) / sum(count.values()), 4)
    log(f"greedy accuracy of the saved model on {data.name}: {res}")
    report["val_greedy_accuracy"] = res
    report["val_greedy_questions"] = len(rows)
    report["val_greedy_by_type_counts"] = dict(sorted(count.items()))
    report["val_greedy_seconds"] = round(time.time() - t0, 1)
    if preds_path:
        preds_path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- checks and card

def check_saved(folder: Path) -> None:
    """The LLaVA's vision tower is byte-identical to clip/'s vision weights; the file set is atp-tiny's."""
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), "pt") as a, safe_open(str(folder / "clip/model.safetensors"), "pt") as b:
        tower = [k for k in a.keys() if k.startswith("vision_tower.")]
        assert tower, "no vision_tower.* tensors in the LLaVA"
        for k in tower:
            x, y = a.get_tensor(k), b.get_tensor("vision_model." + k[len("vision_tower."):])
            assert x.dtype == y.dtype == torch.float16 and x.shape == y.shape and torch.equal(
                x.view(torch.int16), y.view(torch.int16)), f"{k} differs from clip/"
    log(f"check: the LLaVA's {len(tower)} vision tensors equal clip/'s bit for bit")
    if REFERENCE.exists():
        def files(d: Path):   # gate_config.json comes later, from `atp calibrate` on the validation split
            return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.name != "gate_config.json")
        mine, ref = files(folder), files(REFERENCE)
        assert mine == ref, f"file set differs from {REFERENCE}: {sorted(set(mine) ^ set(ref))}"
        log(f"check: same {len(ref)} files as {REFERENCE.relative_to(ROOT)}")


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo) and core count, for the report."""
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} vCPUs"


def model_card(report) -> str:
    c, l, acc = report["clip"], report["llava"], report["val_greedy_accuracy"]
    cnt = report["val_greedy_by_type_counts"]
    return f"""# atp-easyvqa: a small LLaVA trained on easy-VQA

**What it is.** `LlavaForConditionalGeneration` (transformers layout, float16 safetensors) for the easy-VQA
questions: a CLIP ViT vision tower (128 px, patch 16 → 8 × 8 = **64 patch tokens**, hidden 192, 4 layers,
6 heads, quick_gelu), features of layer −2 without CLS, a 2-layer GELU projector and a Llama LM (hidden 256,
4 layers, 8 heads, 2 KV heads, SwiGLU 688, RoPE 10000) with its own byte-level BPE `tokenizer.json`
({l['vocab']} tokens with `<image>`). {l['params'] / 1e6:.2f} M parameters ({l['trained_params'] / 1e6:.2f} M trained in
the LLaVA stage). `clip/` is the `CLIPModel` (the same vision tower, a 2-layer text tower of hidden 128 on the
first 1000 merges of the CLIP BPE, projections to 128): {c['params'] / 1e6:.2f} M parameters.
{report['folder_mb']:.1f} MB on disk in all. Prompt `USER: <image>\\n{{question}} ASSISTANT:`, answer then `</s>`
(as atp-tiny). The image processor (`preprocessor_config.json`, CLIPImageProcessor, bicubic) up-samples
easy-VQA's 64 × 64 images to 128 × 128.

**Data.** [easy-VQA](https://github.com/vzhou842/easy-VQA) 1.0 by Victor Zhou (PyPI `easy-vqa==1.0`,
**MIT licence**): 64 × 64 images of one shape (circle, rectangle, triangle) in one of 8 colours, with
templated questions (24 templates: shape, colour, yes/no) and 13 answers. `Tools/export_easy_vqa.py` copies
the images unchanged into three data folders: **train** = {report['train_images']} of the 4000 train images
({report['train_questions']} questions), **val** = the other {report['val_images']} train images
({report['val_questions']} questions; chosen by image with seed {report['val_seed']}), **test** = all 1000 test
images (9673 questions). Training used train only; every choice (sizes, epochs, learning rates) and
the accuracy below used val only. **The test split was not used for any choice** and not read by the
training script.

**Training** (PyTorch {report['torch']} CPU, {'bf16 autocast' if report['bf16_autocast'] else 'float32'}, {report['threads']} threads, {report['cpu']};
**{report['total_seconds'] / 60:.1f} min** wall time in all):
1. CLIP, {c['epochs']} epochs, batch {c['batch']}, AdamW lr {c['lr']} (warm-up 10 %, cosine), {c['seconds'] / 60:.1f} min:
   a contrastive loss between images and captions of their shape ("a blue rectangle"; same shape and colour
   = positives), plus auxiliary linear heads that are not saved (shape and colour from the image embedding
   and from layer −2; each patch's colour from `P_v·LN_post(h_i)` and from layer −2). Shape labels come
   from the image's questions, colour labels from its pixels (pure palette colours; they agree with the
   questions). Random horizontal flips. Validation: image → caption top-1 among the 24 captions
   {c['val']['retrieval_top1_of_24']:.3f}.
2. LLaVA, vision tower **frozen** (byte-for-byte the CLIP's tower, checked, so relevance reuses the VLM's
   hidden states), {l['epochs']} epochs, batch {l['batch']} images, AdamW lr {l['lr']}, {l['seconds'] / 60:.1f} min, on
   **all 64 visual tokens** (no token dropout; pruning is measured training-free). The questions of an
   image are packed after one shared visual prefix (train_default.py's packing, checked against the
   unpacked model); flipped-image features on half the images.

**Accuracy** (greedy answers, exact match after DESIGN.md's normalisation; the saved float16 folder
reloaded in float32 with transformers `generate`):

| split | questions | all | shape | color | yes/no |
|---|---|---|---|---|---|
| validation (all {report['val_greedy_questions']}) | shape {cnt.get('shape')}, color {cnt.get('color')}, yes/no {cnt.get('yes/no')} | **{acc['all']:.4f}** | {acc.get('shape', 0):.4f} | {acc.get('color', 0):.4f} | {acc.get('yes/no', 0):.4f} |

**Reproduce.**
```
pip download --no-deps easy-vqa==1.0 -d /tmp/evqa      # or let the exporter do it (omit --wheel)
python3 Tools/export_easy_vqa.py --wheel /tmp/evqa/easy_vqa-1.0-py3-none-any.whl --out /tmp/evqa-data
{report['command_line']}
atp eval --model Samples/models/atp-easyvqa --data /tmp/evqa-data/easy-vqa-val --method full --json
```
Seeds: export `--val-seed {report['val_seed']}`, training `--seed {report['seed']}` (CLIP init/order seed,
LLaVA init seed+1, order seed+2). `train_report.json` has the timings and all validation numbers.

**Limits.** It knows only easy-VQA's one-shape images, 13 answers and 24 question templates.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/evqa-data", help="folder with easy-vqa-train and easy-vqa-val "
                                                              "(Tools/export_easy_vqa.py --out)")
    ap.add_argument("--out", default=str(ROOT / "Samples/models/atp-easyvqa"), help="LLaVA folder (CLIP in OUT/clip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clip-epochs", type=int, default=12)
    ap.add_argument("--clip-batch", type=int, default=64)
    ap.add_argument("--clip-lr", type=float, default=7e-4)
    ap.add_argument("--lm-epochs", type=int, default=5)
    ap.add_argument("--lm-batch", type=int, default=32)
    ap.add_argument("--lm-lr", type=float, default=1e-3)
    ap.add_argument("--extra-yes-no", type=int, default=4, help="balanced yes/no questions added per image and step")
    ap.add_argument("--eval-limit", type=int, default=0, help="greedy-evaluate only the first N val questions (0: all)")
    ap.add_argument("--preds", default=f"/tmp/{Path(sys.argv[0]).stem}.val_predictions.jsonl",
                    help="where the greedy validation answers go, one JSON line each ('' for nowhere)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast (default float32: with torch 2.13's CPU wheel bf16 autocast measured 18x slower "
                         "per CLIP step than float32 on the AMD EPYC of this machine kind)")
    ap.add_argument("--quick", action="store_true", help="a small pilot of the same recipe")
    ap.add_argument("--clip-from", help="reuse the clip/ folder of an earlier run (beside its train_report.json) "
                                        "instead of training the CLIP again")
    ap.add_argument("--answers-of", nargs=2, metavar=("MODEL", "DATA"),
                    help="train nothing: write transformers' greedy answers of the saved MODEL folder on the DATA "
                         "folder to --preds (the goldens of Tests/Fixtures/easyvqa-check)")
    args = ap.parse_args()
    if args.answers_of:
        report = {}
        greedy_eval(Path(args.answers_of[0]), Path(args.answers_of[1]), None, report, Path(args.preds))
        return
    if args.quick:
        args.clip_epochs, args.lm_epochs, args.eval_limit = 2, 1, 300
    torch.set_num_threads(args.threads)
    data, out = Path(args.data), Path(args.out)
    tdir, vdir = data / "easy-vqa-train", data / "easy-vqa-val"
    for d in (tdir, vdir):
        if not (d / "qa.jsonl").exists():
            sys.exit(f"train_easy_vqa: {d}/qa.jsonl not found: run Tools/export_easy_vqa.py --out {data} first")
    vmeta = json.loads((vdir / "dataset.json").read_text())
    train, val = load_split(tdir), load_split(vdir)
    log(f"loaded {len(train[1])} training and {len(val[1])} validation images")
    # The training pixels are the saved image processor's, exactly.
    from transformers.models.clip import CLIPImageProcessorPil
    proc = CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    for i in (0, len(val[1]) - 1):
        ref = proc(images=Image.fromarray(val[1][i]), return_tensors="pt")["pixel_values"]
        assert torch.equal(ref, to_pixels(val[2][i:i + 1])), "training pixels differ from the image processor's"
    tlab, vlab = labels(train, "train"), labels(val, "val")
    tmp = out.parent / (out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    cmd = " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    report = {"command": cmd, "command_line": "python3 " + cmd, "seed": args.seed,
              "val_seed": vmeta.get("val_seed"), "data": str(data),
              "train_images": len(train[1]), "train_questions": sum(len(q) for q in train[3]),
              "val_images": len(val[1]), "val_questions": sum(len(q) for q in val[3]),
              "test_split_used": False, "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "threads": args.threads,
              "bf16_autocast": args.bf16, "cpu": cpu_name(), "image_size": SIZE, "patch_size": PATCH, "visual_tokens": GRID * GRID}
    if args.clip_from:
        # Reuse a CLIP trained by an earlier run of this script (its report carries the CLIP's figures).
        from transformers import CLIPModel
        shutil.copytree(Path(args.clip_from), tmp / "clip")
        clip = CLIPModel.from_pretrained(str(tmp / "clip"), dtype=torch.float32)
        earlier = json.loads((Path(args.clip_from).parent / "train_report.json").read_text())
        report["clip"] = earlier["clip"] | {"reused_from": args.clip_from}
        log(f"CLIP reused from {args.clip_from} (trained by: {earlier['command_line']})")
    else:
        clip = train_clip(args, tmp / "clip", train, tlab, val, vlab, report)
    train_llava(args, tmp, clip, train, tlab, val, report)
    preds = Path(args.preds) if args.preds else None
    greedy_eval(tmp, vdir, args.eval_limit or None, report, preds)
    report["total_seconds"] = round(time.time() - T_START, 1)
    (tmp / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (tmp / "MODEL_CARD.md").write_text("")
    report["folder_mb"] = folder_mb(tmp)
    (tmp / "MODEL_CARD.md").write_text(model_card(report))
    report["folder_mb"] = round(folder_mb(tmp), 2)
    (tmp / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    check_saved(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log(f"done in {report['total_seconds'] / 60:.1f} min: {out} ({report['folder_mb']:.1f} MB); "
        f"validation greedy accuracy {report['val_greedy_accuracy']}; predictions in {preds}")


if __name__ == "__main__":
    main()
