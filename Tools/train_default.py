#!/usr/bin/env python3
"""Train the default model: a small CLIP and a small LLaVA on the synthetic warehouse world.

  python3 Tools/train_default.py --out Samples/models/atp-tiny --seed 0

What it does, all from one seed:
 1. Renders the data with the project's own renderer (`atp synth`, built by `swift build -c release`):
    a training split and a validation split (different seeds; the test seed is never used here).
 2. CLIP (HF `CLIPModel` layout): a ViT (224 px, patch 16 -> 14 x 14 = 196 patches) and a text
    tower on a reduced CLIP BPE vocabulary, trained contrastively on frames and captions written
    from their truth. Frames that share the same truth are all positives of each other (soft targets).
 3. LLaVA (HF `LlavaForConditionalGeneration` layout): that CLIP's vision tower, FROZEN (LLaVA-1.5
    style, so relevance reuses the VLM's own hidden states), features of layer -2 without CLS, a
    2-layer GELU projector and a small Llama LM with its own byte-level BPE tokenizer.json (trained
    with `tokenizers`). Trained on every question of every training frame with ALL 196 visual tokens
    (no token dropout): pruning is measured training-free. The questions of one frame are packed into
    one sequence that shares the visual prefix; a block attention mask and restarted position ids make
    each question see exactly what it would see alone (checked against the unpacked model).
 4. Saves both folders (float16 safetensors), evaluates the saved LLaVA with transformers' greedy
    `generate` on the validation split, and writes `train_report.json` (timings, accuracy by type).

Progress lines with an ETA go to stderr. `--quick` is a small pilot of the same recipe.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip_vocab import write_clip_tokenizer_files  # noqa: E402

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
SIZE, PATCH = 224, 16
CLIP_MERGES = 1000
T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class Eta:
    """Progress with an ETA, a line every `every` seconds."""

    def __init__(self, label: str, total: int, every: float = 20.0):
        self.label, self.total, self.every = label, total, every
        self.start = time.time()
        self.last = 0.0

    def step(self, done: int, extra: str = "") -> None:
        now = time.time()
        if done < self.total and now - self.last < self.every:
            return
        self.last = now
        el = now - self.start
        eta = el / max(done, 1) * (self.total - done)
        log(f"{self.label}: {done}/{self.total} ({100 * done / self.total:.0f}%), {el / 60:.1f} min elapsed, "
            f"ETA {eta / 60:.1f} min {extra}")


# ---------------------------------------------------------------- data

def render_split(atp: Path, folder: Path, count: int, seed: int, name: str) -> None:
    meta = folder / "dataset.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        if m.get("seed") == seed and m.get("count") == count:
            log(f"{folder}: already rendered ({count} images, seed {seed})")
            return
        shutil.rmtree(folder)
    log(f"rendering {count} images (seed {seed}) into {folder}")
    subprocess.run([str(atp), "synth", "--out", str(folder), "--count", str(count), "--seed", str(seed),
                    "--name", name], check=True)


def load_split(folder: Path):
    """Images as uint8 [N, H, W, 3], per image its (type, question, answer) list, and per-patch object
    labels [N, 196, len(KINDS)] from `truth.jsonl`."""
    by_image: dict[str, list] = defaultdict(list)
    for line in (folder / "qa.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            by_image[d["image"]].append((d["type"], d["question"], d["answer"]))
    objects = {}
    for line in (folder / "truth.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            objects[d["image"]] = d["objects"]
    names = sorted(by_image)
    imgs = np.stack([np.asarray(Image.open(folder / n).convert("RGB")) for n in names])
    return names, imgs, [by_image[n] for n in names], np.stack([patch_labels(objects[n]) for n in names])


KINDS = ["person", "forklift", "pallet", "box-red", "box-green", "box-blue", "box-white"]


def patch_labels(objects) -> np.ndarray:
    """[196, len(KINDS)]: 1 where an object of that kind covers at least 16 px^2 of the 16 x 16 patch."""
    g = SIZE // PATCH
    lab = np.zeros((g * g, len(KINDS)), dtype=np.float32)
    for o in objects:
        kind = o["kind"] if o["kind"] != "box" else "box-" + o["color"]
        k = KINDS.index(kind)
        x, y, w, h = o["bbox"]
        for py in range(max(0, y // PATCH), min(g, (y + h - 1) // PATCH + 1)):
            for px in range(max(0, x // PATCH), min(g, (x + w - 1) // PATCH + 1)):
                ox = min(x + w, (px + 1) * PATCH) - max(x, px * PATCH)
                oy = min(y + h, (py + 1) * PATCH) - max(y, py * PATCH)
                if ox * oy >= 16:
                    lab[py * g + px, k] = 1
    return lab


HEADS = {"presence": ["no", "yes"], "count": ["zero", "one", "two", "three"], "blocked": ["no", "yes"],
         "side": ["none", "left", "right"], "color": ["none", "red", "green", "blue", "white"]}


def image_targets(qas) -> dict[str, int]:
    a = {t: ans for t, _, ans in qas}
    return {h: HEADS[h].index(a.get(h, "none")) for h in HEADS}


def to_pixels(batch_u8: np.ndarray, chroma: np.ndarray | None = None) -> torch.Tensor:
    """CLIP normalisation of 224 x 224 frames (the processor's resize and crop are the identity at this
    size). `chroma[i]` simulates 4:2:0 chroma subsampling of a video codec on frame i."""
    x = torch.from_numpy(batch_u8).float().permute(0, 3, 1, 2) / 255.0
    if chroma is not None and chroma.any():
        sel = torch.from_numpy(chroma)
        r, g, b = x[sel, 0], x[sel, 1], x[sel, 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb, cr = b - y, r - y
        cb = F.interpolate(F.avg_pool2d(cb[:, None], 2), scale_factor=2, mode="bilinear", align_corners=False)[:, 0]
        cr = F.interpolate(F.avg_pool2d(cr[:, None], 2), scale_factor=2, mode="bilinear", align_corners=False)[:, 0]
        r2, b2 = cr + y, cb + y
        g2 = (y - 0.299 * r2 - 0.114 * b2) / 0.587
        x[sel] = torch.stack([r2, g2, b2], 1).clamp(0, 1)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def truth_key(qas) -> str:
    return "|".join(f"{t}={a}" for t, _, a in sorted(qas))


def caption(qas, rng: random.Random) -> str:
    """A caption written from a frame's truth, in a random clause order and wording."""
    a = {t: ans for t, _, ans in qas}
    parts = []
    parts.append(rng.choice(["a person in the aisle", "a worker in the aisle", "someone in the aisle"])
                 if a["presence"] == "yes" else rng.choice(["no person", "nobody in the aisle", "no people"]))
    n = a["count"]
    parts.append({"zero": rng.choice(["no pallets", "zero pallets"]), "one": "one pallet"}.get(n, f"{n} pallets"))
    if "side" in a:
        parts.append(rng.choice([f"a forklift on the {a['side']} with a {a['color']} box",
                                 f"a {a['color']} box on a forklift on the {a['side']}",
                                 f"the forklift is on the {a['side']} carrying a {a['color']} box"]))
    else:
        parts.append(rng.choice(["no forklift", "there is no forklift"]))
    parts.append(rng.choice(["the aisle is blocked", "a pallet blocks the aisle"]) if a["blocked"] == "yes"
                 else rng.choice(["the aisle is clear", "the aisle is not blocked"]))
    rng.shuffle(parts)
    return rng.choice(["a warehouse aisle: ", "warehouse, ", ""]) + ", ".join(parts)


# ---------------------------------------------------------------- CLIP

def clip_configs(vocab: int, bos: int, eos: int, size: int = SIZE, patch: int = PATCH, text_layers: int = 3,
                 text_positions: int = 64):
    """The small CLIP of both training recipes (the easy-VQA one passes its image size and a smaller text tower)."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig
    vision = CLIPVisionConfig(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=6,
                              image_size=size, patch_size=patch, hidden_act="quick_gelu", projection_dim=128)
    text = CLIPTextConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=text_layers, num_attention_heads=4,
                          vocab_size=vocab, max_position_embeddings=text_positions, hidden_act="quick_gelu",
                          bos_token_id=bos, eos_token_id=eos, pad_token_id=eos, projection_dim=128)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=128)


def train_clip(args, clip_dir: Path, train, val, report):
    from transformers import CLIPModel, CLIPTokenizer
    write_clip_tokenizer_files(clip_dir, num_merges=CLIP_MERGES)
    tok = CLIPTokenizer.from_pretrained(str(clip_dir))
    cfg = clip_configs(len(tok), tok.bos_token_id, tok.eos_token_id)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    model = CLIPModel(cfg)
    _, imgs, qas, plabels = train
    n = len(imgs)
    # Auxiliary heads (not saved): the frame's attributes from its image embedding, and each patch's
    # object kinds from its projected final hidden state P_v LN_post(h_i). They give the tower a dense
    # signal from the same truth, which contrastive learning alone turns into features too slowly on 2 cores.
    heads = torch.nn.ModuleDict({h: torch.nn.Linear(128, len(v)) for h, v in HEADS.items()})
    patch_head = torch.nn.ModuleDict({"final": torch.nn.Linear(128, len(KINDS)),        # P_v LN_post(h_i): the gate's space
                                      "llava": torch.nn.Linear(cfg.vision_config.hidden_size, len(KINDS))})  # layer -2: what LLaVA reads
    targets = {h: torch.tensor([image_targets(q)[h] for q in qas]) for h in HEADS}
    plabels_t = torch.from_numpy(plabels)
    keys = [truth_key(q) for q in qas]
    key_ids = {k: i for i, k in enumerate(sorted(set(keys)))}
    kid = torch.tensor([key_ids[k] for k in keys])
    rng = random.Random(args.seed)
    steps_per_epoch = n // args.clip_batch
    total = steps_per_epoch * args.clip_epochs
    params = list(model.named_parameters()) + [("heads." + k, p) for k, p in heads.named_parameters()] \
        + [("patch_head." + k, p) for k, p in patch_head.named_parameters()]
    decay = [p for k, p in params if p.ndim >= 2 and "embedding" not in k]
    no_decay = [p for k, p in params if not (p.ndim >= 2 and "embedding" not in k)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.clip_lr, betas=(0.9, 0.98))
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    eta = Eta("clip", total)
    step = 0
    model.train()
    log(f"CLIP: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {n} frames, "
        f"{len(key_ids)} distinct truths, {total} steps of {args.clip_batch}")
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.clip_epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(steps_per_epoch):
            idx = perm[s * args.clip_batch:(s + 1) * args.clip_batch].numpy()
            chroma = np.array([rng.random() < 0.5 for _ in idx])
            pix = to_pixels(imgs[idx], chroma)
            caps = [caption(qas[i], rng) for i in idx]
            t = tok(caps, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                vout = model.vision_model(pixel_values=pix, output_hidden_states=True)
                img = model.visual_projection(vout.pooler_output)
                patches = model.visual_projection(model.vision_model.post_layernorm(vout.last_hidden_state[:, 1:]))
                txt = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
                aux_logits = {h: head(img) for h, head in heads.items()}
                patch_logits = [patch_head["final"](patches), patch_head["llava"](vout.hidden_states[-2][:, 1:])]
            txt = txt.pooler_output if hasattr(txt, "pooler_output") else txt
            aux = sum(F.cross_entropy(aux_logits[h].float(), targets[h][idx]) for h in HEADS) / len(HEADS)
            paux = sum(F.binary_cross_entropy_with_logits(pl.float(), plabels_t[idx], pos_weight=torch.tensor(4.0))
                       for pl in patch_logits) / 2
            img = F.normalize(img.float(), dim=-1)
            txt = F.normalize(txt.float(), dim=-1)
            logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
            k = kid[idx]
            target = (k[:, None] == k[None, :]).float()
            target = target / target.sum(1, keepdim=True)
            contrastive = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                                 + torch.sum(-target * F.log_softmax(logits.T, 1), 1).mean())
            loss = contrastive + aux + paux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            sched.step()
            step += 1
            eta.step(step, f"contrastive {contrastive.item():.3f} attributes {aux.item():.3f} patches {paux.item():.3f} "
                           f"scale {model.logit_scale.exp().item():.1f}")
        if epoch + 1 < args.clip_epochs:
            clip_validation(model, tok, heads, val)
            model.train()
    acc, heads_acc = clip_validation(model, tok, heads, val)
    report["clip"] = {"params": sum(p.numel() for p in model.parameters()), "steps": total, "batch": args.clip_batch,
                      "val_retrieval_top1": acc, "val_attribute_heads": heads_acc, "seconds": time.time() - report["_t"]}
    save_clip(model, tok, clip_dir)
    return model


@torch.no_grad()
def clip_validation(model, tok, heads, val):
    """Frame -> caption retrieval among one caption per distinct truth, and the attribute heads' accuracy."""
    model.eval()
    _, vimgs, vqas, _ = val
    vkeys = [truth_key(q) for q in vqas]
    uniq = sorted(set(vkeys))
    first = {k: vqas[vkeys.index(k)] for k in uniq}
    vrng = random.Random(1)
    t = tok([caption(first[k], vrng) for k in uniq], padding=True, return_tensors="pt")
    txt = model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
    txt = F.normalize(getattr(txt, "pooler_output", txt), dim=-1)
    hits = 0
    head_hits = Counter()
    for s in range(0, len(vimgs), 64):
        img = model.get_image_features(pixel_values=to_pixels(vimgs[s:s + 64]))
        img = getattr(img, "pooler_output", img)
        for h, head in heads.items():
            pred = head(img).argmax(1).tolist()
            head_hits[h] += sum(p == image_targets(vqas[s + i])[h] for i, p in enumerate(pred))
        img = F.normalize(img, dim=-1)
        pred = (img @ txt.T).argmax(1)
        hits += sum(uniq[p] == vkeys[s + i] for i, p in enumerate(pred.tolist()))
    acc = hits / len(vimgs)
    heads_acc = {h: round(head_hits[h] / len(vimgs), 3) for h in HEADS}
    log(f"CLIP validation: frame -> caption of its truth, top-1 {acc:.3f} among {len(uniq)} truths; "
        f"attribute heads {heads_acc}")
    return acc, heads_acc


def save_clip(model, tok, clip_dir: Path) -> None:
    from transformers.models.clip import CLIPImageProcessorPil
    model.to(torch.float16).save_pretrained(clip_dir)
    model.to(torch.float32)
    CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}).save_pretrained(clip_dir)


# ---------------------------------------------------------------- LM tokenizer

def question_corpus() -> list[str]:
    qs = ["Is there a person in the aisle?", "What colour is the box next to the forklift?", "How many pallets are there?",
          "Is the forklift on the left or the right?", "Is the aisle blocked?"]
    answers = ["yes", "no", "red", "green", "blue", "white", "zero", "one", "two", "three", "four", "left", "right"]
    lines = []
    for q in qs:
        for a in answers:
            lines.append(f"USER: \n{q} ASSISTANT: {a}")
    lines += ["Is there a forklift? Is there a box? What colour is the pallet? How many people are there? "
              "Is there a red box on the floor? The aisle is clear. A person walks past the shelf."] * 3
    return lines * 4


def make_lm_tokenizer(out: Path):
    return train_lm_tokenizer(question_corpus(), out)


def train_lm_tokenizer(corpus, out: Path, vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on `corpus` (an iterable of texts), with <unk> <s> </s>, a BOS
    post-processor and the added special token <image>; saved to `out` and returned."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(corpus, trainer=trainer)
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", tk.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.save_pretrained(out)
    return fast


def lm_train_step(llava, opt, sched, trainable, items, prefix, feats, pad, bf16: bool) -> torch.Tensor:
    """One optimiser step of the LM (and projector) on packed questions after their frames' features."""
    ids, pos, mask, (tb, tp, tt) = pack(items, prefix, feats.shape[1], pad)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        h = lm_forward(llava, ids, pos, mask, feats, len(prefix))
        logits = llava.lm_head(h[tb, tp])
    loss = F.cross_entropy(logits.float(), tt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    opt.step()
    sched.step()
    return loss


def prompt_parts(tok, question: str, image_id: int):
    ids = tok("USER: <image>\n" + question + " ASSISTANT:")["input_ids"]
    assert ids.count(image_id) == 1, ids
    i = ids.index(image_id)
    return ids[:i], ids[i + 1:]


def answer_ids(tok, answer: str) -> list[int]:
    return tok(" " + answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


# ---------------------------------------------------------------- LLaVA

def llava_config(clip_cfg, tok, image_id: int):
    from transformers import LlamaConfig, LlavaConfig
    text = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                       num_key_value_heads=2, head_dim=32, vocab_size=len(tok), max_position_embeddings=512,
                       rope_theta=10000.0, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       tie_word_embeddings=False, rms_norm_eps=1e-5)
    n = (SIZE // PATCH) ** 2
    return LlavaConfig(vision_config=clip_cfg.vision_config, text_config=text, image_token_index=image_id,
                       vision_feature_layer=-2, vision_feature_select_strategy="default",
                       projector_hidden_act="gelu", image_seq_length=n, tie_word_embeddings=False)


@torch.no_grad()
def vision_features(vision_model, imgs: np.ndarray, chroma: np.ndarray | None, label: str) -> torch.Tensor:
    """Layer -2 hidden states without the CLS row, [N, 196, Dv], float16 (the frozen tower's output)."""
    out = []
    eta = Eta(label, len(imgs))
    for s in range(0, len(imgs), 64):
        pix = to_pixels(imgs[s:s + 64], None if chroma is None else chroma[s:s + 64])
        hs = vision_model(pixel_values=pix, output_hidden_states=True).hidden_states[-2][:, 1:]
        out.append(hs.to(torch.float16))
        eta.step(min(s + 64, len(imgs)))
    return torch.cat(out)


def pack(items, prefix, nvis, pad_id):
    """Packs each frame's questions after one shared [prefix, visual] part.

    items: per frame a list of (suffix ids, answer ids). Returns ids [B, L] (visual slots hold pad_id),
    position ids, an additive block-causal mask [B, 1, L, L], and (batch, position, target) triples of
    the answer tokens to predict."""
    p = len(prefix)
    base = p + nvis
    lens = [base + sum(len(s) + len(a) for s, a in qs) for qs in items]
    L = max(lens)
    B = len(items)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    block = torch.full((B, L), -2, dtype=torch.long)   # -1 shared part, k block k, -2 padding
    tb, tp, tt = [], [], []
    for b, qs in enumerate(items):
        ids[b, :p] = torch.tensor(prefix)
        pos[b, :base] = torch.arange(base)
        block[b, :base] = -1
        at = base
        for k, (suf, ans) in enumerate(qs):
            seq = suf + ans
            ids[b, at:at + len(seq)] = torch.tensor(seq)
            pos[b, at:at + len(seq)] = torch.arange(base, base + len(seq))
            block[b, at:at + len(seq)] = k
            for j, t in enumerate(ans):
                tb.append(b)
                tp.append(at + len(suf) - 1 + j)
                tt.append(t)
            at += len(seq)
        pos[b, at:] = torch.arange(L - at) + base
    i = torch.arange(L)
    causal = i[None, :] <= i[:, None]                                   # [L, L] key j <= query i
    bq, bk = block[:, :, None], block[:, None, :]
    allowed = causal[None] & ((bk == -1) | (bk == bq))
    allowed |= torch.eye(L, dtype=torch.bool)[None]                      # padding rows see themselves
    mask = torch.zeros((B, 1, L, L))
    mask.masked_fill_(~allowed[:, None], torch.finfo(torch.float32).min)
    return ids, pos, mask, (torch.tensor(tb), torch.tensor(tp), torch.tensor(tt))


def lm_forward(llava, ids, pos, mask, feats, p):
    lm = llava.model.language_model
    emb = lm.embed_tokens(ids)
    vis = llava.model.multi_modal_projector(feats.float())
    emb = torch.cat([emb[:, :p], vis.to(emb.dtype), emb[:, p + vis.shape[1]:]], 1)
    return lm(inputs_embeds=emb, attention_mask=mask, position_ids=pos).last_hidden_state


def frame_items(tok, qas, image_id, cache):
    out = []
    for _, q, a in qas:
        if q not in cache:
            cache[q] = prompt_parts(tok, q, image_id)
        if a not in cache:
            cache[a] = answer_ids(tok, a)
        out.append((cache[q][1], cache[a]))
    return out


def check_packing(llava, tok, image_id, imgs, qas, prefix):
    """The packed forward must give the unpacked model's logits at every answer position."""
    from transformers import LlavaForConditionalGeneration  # noqa: F401
    llava.eval()
    cache = {}
    with torch.no_grad():
        pix = to_pixels(imgs[:2])
        feats = llava.model.vision_tower(pixel_values=pix, output_hidden_states=True).hidden_states[-2][:, 1:]
        items = [frame_items(tok, qas[i], image_id, cache) for i in range(2)]
        ids, pos, mask, (tb, tp, tt) = pack(items, prefix, feats.shape[1], tok.pad_token_id or 0)
        h = lm_forward(llava, ids, pos, mask, feats, len(prefix))
        packed = llava.lm_head(h[tb, tp])
        ref = []
        for b in range(2):
            for _, q, a in qas[b]:
                pre, suf = prompt_parts(tok, q, image_id)
                ans = answer_ids(tok, a)
                seq = pre + [image_id] * feats.shape[1] + suf + ans
                out = llava(input_ids=torch.tensor([seq]), pixel_values=pix[b:b + 1])
                start = len(pre) + feats.shape[1] + len(suf) - 1
                ref.append(out.logits[0, start:start + len(ans)])
        ref = torch.cat(ref)
    err = (packed - ref).abs().max().item()
    log(f"packing check: max |packed - unpacked| logit difference {err:.2e} over {len(ref)} positions")
    assert err < 2e-3, f"packed training forward differs from LlavaForConditionalGeneration by {err}"
    llava.train()


def frozen_tower_llava(cfg, clip_model, seed: int):
    """A `LlavaForConditionalGeneration` of `cfg` (sdpa attention), initialised from `seed`, whose vision
    tower IS the CLIP's, loaded and frozen."""
    from transformers import LlavaForConditionalGeneration
    cfg._attn_implementation = "sdpa"
    cfg.text_config._attn_implementation = "sdpa"
    cfg.vision_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    llava = LlavaForConditionalGeneration(cfg)
    missing = llava.model.vision_tower.load_state_dict(clip_model.vision_model.state_dict(), strict=False)
    assert not missing.unexpected_keys and all("position_ids" in k for k in missing.missing_keys), missing
    for p in llava.model.vision_tower.parameters():
        p.requires_grad_(False)
    return llava


def train_llava(args, out: Path, clip_model, train, val, report):
    tok = make_lm_tokenizer(out)
    image_id = tok.convert_tokens_to_ids("<image>")
    llava = frozen_tower_llava(llava_config(clip_model.config, tok, image_id), clip_model, args.seed + 1)
    prefix, _ = prompt_parts(tok, "x", image_id)
    _, imgs, qas, _ = train
    check_packing(llava, tok, image_id, imgs, qas, prefix)
    rng = np.random.default_rng(args.seed)
    chroma = rng.random(len(imgs)) < 0.5
    feats = vision_features(llava.model.vision_tower, imgs, chroma, "features (train)")
    vfeats = vision_features(llava.model.vision_tower, val[1], None, "features (val)")
    trainable = [p for p in llava.parameters() if p.requires_grad]
    log(f"LLaVA: {sum(p.numel() for p in llava.parameters()) / 1e6:.2f} M parameters "
        f"({sum(p.numel() for p in trainable) / 1e6:.2f} M trained), {len(imgs)} frames, "
        f"{sum(len(q) for q in qas)} questions")
    n = len(imgs)
    steps_per_epoch = n // args.lm_batch
    total = steps_per_epoch * args.lm_epochs
    opt = torch.optim.AdamW(trainable, lr=args.lm_lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    cache = {}
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eta = Eta("llava", total)
    step = 0
    g = torch.Generator().manual_seed(args.seed + 2)
    llava.train()
    for epoch in range(args.lm_epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(steps_per_epoch):
            idx = perm[s * args.lm_batch:(s + 1) * args.lm_batch]
            items = [frame_items(tok, qas[i], image_id, cache) for i in idx.tolist()]
            loss = lm_train_step(llava, opt, sched, trainable, items, prefix, feats[idx], pad, args.bf16)
            step += 1
            eta.step(step, f"loss {loss.item():.4f}")
        acc = teacher_forced_accuracy(llava, tok, image_id, vfeats, val[2], prefix, pad, cache)
        log(f"epoch {epoch + 1}: validation (teacher-forced answers) {acc}")
    llava.eval()
    report["llava"] = {"params": sum(p.numel() for p in llava.parameters()),
                       "trained_params": sum(p.numel() for p in trainable), "steps": total, "batch": args.lm_batch,
                       "seconds": time.time() - report["_t"]}
    llava.to(torch.float16).save_pretrained(out)
    from transformers.models.clip import CLIPImageProcessorPil
    CLIPImageProcessorPil(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}).save_pretrained(out)
    return tok


@torch.no_grad()
def teacher_forced_accuracy(llava, tok, image_id, feats, qas, prefix, pad, cache):
    llava.eval()
    right, count = Counter(), Counter()
    for s in range(0, len(feats), 64):
        items = [frame_items(tok, qas[i], image_id, cache) for i in range(s, min(s + 64, len(feats)))]
        ids, pos, mask, (tb, tp, tt) = pack(items, prefix, feats.shape[1], pad)
        h = lm_forward(llava, ids, pos, mask, feats[s:s + 64], len(prefix))
        pred = llava.lm_head(h[tb, tp]).argmax(-1)
        ok = (pred == tt).tolist()
        k = 0
        for i, q in enumerate(items):
            for (suf, ans), (t, _, _) in zip(q, qas[s + i]):
                good = all(ok[k:k + len(ans)])
                k += len(ans)
                right[t] += good
                count[t] += 1
    llava.train()
    return {t: round(right[t] / count[t], 4) for t in sorted(count)} | {"all": round(sum(right.values()) / sum(count.values()), 4)}


@torch.no_grad()
def greedy_eval(folder: Path, val, limit: int, report):
    """The saved folder, reloaded in float32 with eager attention, answering with greedy `generate`."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    image_id = model.config.image_token_index
    n = (SIZE // PATCH) ** 2
    right, count = Counter(), Counter()
    _, imgs, qas, _ = val
    eta = Eta("greedy eval", min(limit, len(imgs)))
    for i in range(min(limit, len(imgs))):
        pix = to_pixels(imgs[i:i + 1])
        for t, q, a in qas[i]:
            pre, suf = prompt_parts(tok, q, image_id)
            ids = torch.tensor([pre + [image_id] * n + suf])
            out = model.generate(input_ids=ids, pixel_values=pix, max_new_tokens=4, do_sample=False,
                                 pad_token_id=tok.eos_token_id)
            text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip().lower().rstrip(".!?")
            right[t] += text == a
            count[t] += 1
        eta.step(i + 1)
    res = {t: round(right[t] / count[t], 4) for t in sorted(count)}
    res["all"] = round(sum(right.values()) / sum(count.values()), 4)
    log(f"greedy validation accuracy of the saved model: {res}")
    report["val_greedy_accuracy"] = res
    report["val_greedy_frames"] = min(limit, len(imgs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="LLaVA folder to write (the CLIP goes to OUT/clip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--atp", default=str(ROOT / ".build/release/atp"), help="the atp binary (renders the data)")
    ap.add_argument("--work", default=None, help="where the rendered splits go (default /tmp/atp-train-SEED)")
    ap.add_argument("--train-count", type=int, default=16000)
    ap.add_argument("--val-count", type=int, default=800)
    ap.add_argument("--clip-epochs", type=int, default=5)
    ap.add_argument("--clip-batch", type=int, default=64)
    ap.add_argument("--clip-lr", type=float, default=7e-4)
    ap.add_argument("--lm-epochs", type=int, default=3)
    ap.add_argument("--lm-batch", type=int, default=32)
    ap.add_argument("--lm-lr", type=float, default=1e-3)
    ap.add_argument("--eval-frames", type=int, default=300, help="validation frames for the final greedy evaluation")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32 (default: bf16 autocast)")
    ap.add_argument("--quick", action="store_true", help="a small pilot of the same recipe")
    args = ap.parse_args()
    if args.quick:
        args.train_count, args.val_count, args.clip_epochs, args.lm_epochs, args.eval_frames = 2048, 256, 1, 1, 40
    torch.set_num_threads(args.threads)
    atp = Path(args.atp)
    if not atp.exists():
        sys.exit(f"train_default: {atp} not found: build it first with `swift build -c release`")
    out = Path(args.out)
    work = Path(args.work or f"/tmp/atp-train-{args.seed}")
    work.mkdir(parents=True, exist_ok=True)
    # Seeds: train 1000 + seed, validation 2000 + seed. Test splits use other seeds (README: 7001).
    render_split(atp, work / "train", args.train_count, 1000 + args.seed, "synthetic-train")
    render_split(atp, work / "val", args.val_count, 2000 + args.seed, "synthetic-val")
    train, val = load_split(work / "train"), load_split(work / "val")
    log(f"loaded {len(train[1])} training and {len(val[1])} validation frames")
    tmp = out.parent / (out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    report = {"command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), "seed": args.seed,
              "train_frames": len(train[1]), "val_frames": len(val[1]), "torch": torch.__version__,
              "threads": args.threads, "bf16_autocast": args.bf16, "_t": time.time()}
    clip = train_clip(args, tmp / "clip", train, val, report)
    report["_t"] = time.time()
    train_llava(args, tmp, clip, train, val, report)
    greedy_eval(tmp, val, args.eval_frames, report)
    report.pop("_t")
    report["total_seconds"] = round(time.time() - T0, 1)
    (tmp / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    if out.exists():
        keep = out / "MODEL_CARD.md"
        card = keep.read_text() if keep.exists() else None
        shutil.rmtree(out)
        tmp.rename(out)
        if card:
            (out / "MODEL_CARD.md").write_text(card)
    else:
        tmp.rename(out)
    log(f"done in {report['total_seconds'] / 60:.1f} min: {out}")


if __name__ == "__main__":
    main()
