#!/usr/bin/env python3
"""Build a CLIP BPE tokenizer folder (Hugging Face layout) from open_clip's merge list.

Source: ``bpe_simple_vocab_16e6.txt.gz`` shipped inside the ``open-clip-torch`` wheel
(3.3.0). Its first line is a header; lines 1 ... 48894 are the merges ("a b" per line).

Vocabulary order (ids), as the original CLIP tokenizer builds it:
  0   ... 255    the 256 byte-level symbols in GPT-2 ``bytes_to_unicode`` order
  256 ... 511    the same symbols with ``</w>`` appended
  512 ... 512+M-1  each merge, joined (a + b)
  then ``<|startoftext|>``, ``<|endoftext|>``
With all M = 48894 merges the vocabulary has 49408 entries.

A REDUCED vocabulary keeps only the first M merges (vocab = 512 + M + 2); it is what the
random-weight CLIP fixture models use (M = 1000 -> 1514 tokens).

Files written: vocab.json, merges.txt (first line ``#version: 0.2``), tokenizer_config.json,
special_tokens_map.json and tokenizer.json (saved by transformers' CLIPTokenizer).

Usage:
    python Tools/clip_vocab.py OUT_DIR [--bpe PATH_TO_GZ] [--num-merges M]
    from clip_vocab import write_clip_tokenizer_files
    write_clip_tokenizer_files(out_dir, num_merges=1000)
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OPEN_CLIP_VERSION = "3.3.0"
BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
DEFAULT_BPE_PATHS = [Path("/tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz")]
FULL_NUM_MERGES = 49152 - 256 - 2  # 48894
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def bytes_to_unicode() -> list[str]:
    """The 256 printable symbols standing for bytes 0...255, in GPT-2's order.

    Returns the symbols in vocabulary order (printable Latin-1 ranges first, then the
    remaining bytes mapped to U+0100 upwards), i.e. element k is the k-th vocab entry.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def download_bpe_gz(dest_dir: Path) -> Path:
    """Fetch the open-clip-torch wheel with pip and extract the BPE merge file from it."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             f"open-clip-torch=={OPEN_CLIP_VERSION}", "-d", tmp],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise FileNotFoundError(f"pip download produced no wheel in {tmp}")
        with zipfile.ZipFile(wheels[0]) as zf:
            out = dest_dir / "bpe_simple_vocab_16e6.txt.gz"
            out.write_bytes(zf.read(BPE_MEMBER))
            return out


def find_bpe_gz(path: str | os.PathLike | None = None) -> Path:
    """Return the BPE merge file: ``path`` if given, a known location, or a fresh download."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: BPE merge file not found")
        return p
    for p in DEFAULT_BPE_PATHS:
        if p.is_file():
            return p
    return download_bpe_gz(Path(tempfile.gettempdir()) / "open_clip_bpe")


def load_merges(bpe_path: str | os.PathLike | None = None, num_merges: int | None = None) -> list[tuple[str, str]]:
    """Read the first ``num_merges`` merges (all 48894 when None) as (left, right) pairs."""
    n = FULL_NUM_MERGES if num_merges is None else num_merges
    if not 0 <= n <= FULL_NUM_MERGES:
        raise ValueError(f"num_merges must be in [0, {FULL_NUM_MERGES}], got {n}")
    text = gzip.open(find_bpe_gz(bpe_path)).read().decode("utf-8")
    lines = text.split("\n")
    merges = [tuple(line.split()) for line in lines[1:FULL_NUM_MERGES + 1]]
    assert all(len(m) == 2 for m in merges), "malformed merge line in BPE file"
    return merges[:n]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Vocabulary in CLIP order: bytes, bytes + </w>, merges, then the two special tokens."""
    symbols = bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + [a + b for a, b in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate vocabulary entry"
    return vocab


def write_clip_tokenizer_files(out_dir: str | os.PathLike, num_merges: int | None = None,
                               bpe_path: str | os.PathLike | None = None,
                               with_tokenizer_json: bool = True) -> dict[str, int]:
    """Write a CLIP tokenizer folder (HF layout) using the first ``num_merges`` merges.

    Writes vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json and, when
    transformers is importable and ``with_tokenizer_json``, tokenizer.json. Returns the vocab.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merges = load_merges(bpe_path, num_merges)
    (out / "tokenizer.json").unlink(missing_ok=True)  # never let a stale one shadow the new files
    vocab = build_vocab(merges)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(out / "merges.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "model_max_length": 77,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")
    if with_tokenizer_json:
        try:
            from transformers import CLIPTokenizer
        except ImportError:  # tokenizer.json is optional; the slow files are enough
            return vocab
        # transformers 5.x builds its tokenizers-backed CLIPTokenizer from vocab.json + merges.txt
        # (there is no tokenizer.json yet in the folder) and serialises that pipeline.
        tok = CLIPTokenizer.from_pretrained(str(out))
        tok.backend_tokenizer.save(str(out / "tokenizer.json"))
    return vocab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", help="folder to write the tokenizer files into")
    ap.add_argument("--bpe", default=None, help="path to bpe_simple_vocab_16e6.txt.gz (default: find or pip download)")
    ap.add_argument("--num-merges", type=int, default=None, help=f"keep only the first M merges (default all {FULL_NUM_MERGES})")
    ap.add_argument("--no-tokenizer-json", action="store_true", help="skip writing tokenizer.json")
    args = ap.parse_args()
    vocab = write_clip_tokenizer_files(args.out_dir, args.num_merges, args.bpe, not args.no_tokenizer_json)
    print(f"wrote {args.out_dir}: {len(vocab)} tokens")


if __name__ == "__main__":
    main()
