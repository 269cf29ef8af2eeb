#!/usr/bin/env python3
"""Export easy-VQA 1.0 (Victor Zhou, MIT licence) as three `atp eval` data folders.

  python3 Tools/export_easy_vqa.py --wheel easy_vqa-1.0-py3-none-any.whl --out /tmp/evqa-data

Without `--wheel` the wheel is fetched with `pip download --no-deps easy-vqa==1.0` into a temporary folder
(network access to PyPI needed). The images and questions are read straight from the wheel (a zip).

Writes, each as a `.partial` sibling renamed into place:
  OUT/easy-vqa-train  the train images minus the validation images (3500 by default)
  OUT/easy-vqa-val    `--val-count` train images (500), chosen by image with `--val-seed` (0): a validation
                      split carved from train, never from test
  OUT/easy-vqa-test   all 1000 test images
Each folder: `images/<id>.png` (the 64 x 64 PNGs, byte-identical copies), `qa.jsonl`
(`{"image","question","answer","type"}`, type "shape" | "color" | "yes/no") and `dataset.json`.
Every question template in the data is classified; an unknown one is an error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
_S = "(?:" + "|".join(SHAPES) + ")"
_C = "(?:" + "|".join(COLORS) + ")"
_THING = f"(?:{_C} shape|{_S})"
# The 40 templates of easy-VQA 1.0 (gen_data/generate_data.py), as three families.
TEMPLATES = [
    ("shape", re.compile(rf"what is the {_C} shape\?")),
    ("shape", re.compile(r"what shape (?:does the image contain|is in the image|is present)\?")),
    ("color", re.compile(rf"what (?:color is|is the color of) the (?:{_S}|shape)\?")),
    ("yes/no", re.compile(rf"does the image(?: not)? contain a {_THING}\?")),
    ("yes/no", re.compile(rf"is (?:a|no) {_THING} present\?")),
    ("yes/no", re.compile(rf"is there(?: not)? a {_THING}(?: in the image)?\?")),
]
ANSWERS = {"shape": set(SHAPES), "color": set(COLORS), "yes/no": {"yes", "no"}}


def question_type(question: str, answer: str) -> str:
    """The type of one question; raises on a question no template matches or an answer outside its type."""
    kinds = {t for t, rx in TEMPLATES if rx.fullmatch(question)}
    if len(kinds) != 1:
        raise ValueError(f"unclassified easy-VQA question {question!r} (answer {answer!r}): "
                         f"{'no' if not kinds else 'more than one'} template matches")
    kind = kinds.pop()
    if answer not in ANSWERS[kind]:
        raise ValueError(f"question {question!r} classified {kind!r} has answer {answer!r} outside {sorted(ANSWERS[kind])}")
    return kind


def template_of(question: str) -> str:
    q = re.sub(rf"\b{_S}\b", "<shape>", question)
    return re.sub(rf"\b{_C}\b", "<color>", q)


def get_wheel(path: str | None, tmp: Path) -> Path:
    if path:
        return Path(path)
    print("export_easy_vqa: no --wheel given, downloading easy-vqa==1.0 with "
          f"`pip download --no-deps easy-vqa==1.0 -d {tmp}`", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "easy-vqa==1.0", "-d", str(tmp)], check=True)
    wheels = sorted(tmp.glob("easy_vqa-1.0-*.whl"))
    if not wheels:
        sys.exit("export_easy_vqa: pip did not produce easy_vqa-1.0-*.whl")
    return wheels[0]


def read_split(zf: zipfile.ZipFile, split: str):
    """(questions by image id, {image id: zip member name}) of one split of the wheel."""
    qs = json.loads(zf.read(f"easy_vqa/data/{split}/questions.json"))
    by_image: dict[int, list] = defaultdict(list)
    for q, a, i in qs:
        by_image[int(i)].append((q, a))
    rx = re.compile(rf"easy_vqa/data/{split}/images/(\d+)\.png")
    members = {}
    for name in zf.namelist():
        m = rx.fullmatch(name)
        if m:
            members[int(m.group(1))] = name
    if set(by_image) - set(members):
        raise ValueError(f"{split}: questions name images missing from the wheel: {sorted(set(by_image) - set(members))[:5]}")
    return by_image, members, len(qs)


def write_folder(zf, out: Path, name: str, ids: list[int], by_image, members, extra: dict) -> dict:
    final = out / name
    tmp = out / (name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images").mkdir(parents=True)
    types = Counter()
    answers = Counter()
    lines = []
    for i in ids:
        rel = f"images/{i}.png"
        (tmp / rel).write_bytes(zf.read(members[i]))          # byte-identical copy
        for q, a in by_image.get(i, []):
            t = question_type(q, a)
            types[t] += 1
            answers[a] += 1
            lines.append(json.dumps({"image": rel, "question": q, "answer": a, "type": t}, separators=(",", ":")))
    (tmp / "qa.jsonl").write_text("\n".join(lines) + "\n")
    meta = {"name": name, "source": "easy-vqa 1.0 (MIT)", "count": len(ids), "questions": len(lines),
            "by_type": dict(sorted(types.items())), "answers": dict(sorted(answers.items())),
            "homepage": "https://github.com/vzhou842/easy-VQA", "licence": "MIT, (c) Victor Zhou",
            "image_size": [64, 64]} | extra
    (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    print(f"{name}: {len(ids)} images, {len(lines)} questions "
          f"({', '.join(f'{k} {v}' for k, v in sorted(types.items()))}) -> {final}", flush=True)
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", help="easy_vqa-1.0-py3-none-any.whl (default: download it with pip)")
    ap.add_argument("--out", required=True, help="folder that receives easy-vqa-{train,val,test}")
    ap.add_argument("--val-count", type=int, default=500, help="train images moved to the validation split")
    ap.add_argument("--val-seed", type=int, default=0, help="seed of the validation images' choice")
    ap.add_argument("--check", help="also write the first --check-count test images (by id) with all their questions "
                                    "to this folder: the committed Tests/Fixtures/easyvqa-check")
    ap.add_argument("--check-count", type=int, default=24)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        wheel = get_wheel(args.wheel, Path(td))
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        with zipfile.ZipFile(wheel) as zf:
            train_q, train_m, n_train_q = read_split(zf, "train")
            test_q, test_m, n_test_q = read_split(zf, "test")
            # Classify every question of both splits first, so an unknown template fails before any write.
            templates = Counter()
            for by in (train_q, test_q):
                for qs in by.values():
                    for q, a in qs:
                        templates[(question_type(q, a), template_of(q))] += 1
            print(f"export_easy_vqa: {len(templates)} question templates, all classified: "
                  f"{dict(Counter(t for t, _ in templates))}", file=sys.stderr)
            train_ids = sorted(train_m)
            if not 0 < args.val_count < len(train_ids):
                sys.exit(f"export_easy_vqa: --val-count must be in 1..{len(train_ids) - 1}")
            val_ids = sorted(random.Random(args.val_seed).sample(train_ids, args.val_count))
            val_set = set(val_ids)
            fit_ids = [i for i in train_ids if i not in val_set]
            common = {"wheel_sha256": sha}
            carve = {"carved_from": "easy-vqa 1.0 train", "val_seed": args.val_seed, "val_count": args.val_count}
            write_folder(zf, out, "easy-vqa-train", fit_ids, train_q, train_m,
                         common | {"split": "train"} | carve)
            write_folder(zf, out, "easy-vqa-val", val_ids, train_q, train_m,
                         common | {"split": "validation"} | carve)
            write_folder(zf, out, "easy-vqa-test", sorted(test_m), test_q, test_m,
                         common | {"split": "test"})
            if args.check:
                check = Path(args.check)
                check.parent.mkdir(parents=True, exist_ok=True)
                write_folder(zf, check.parent, check.name, sorted(test_m)[:args.check_count], test_q, test_m,
                             common | {"split": "test", "check_of": f"the first {args.check_count} test images by id"})


if __name__ == "__main__":
    main()
