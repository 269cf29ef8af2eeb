#!/usr/bin/env python3
"""Golden fixtures for the Swift CLIPTokenizer (Tests/ModelIOTests/CLIPTokenizerTests.swift).

Writes, under Tests/Fixtures/clip-tokenizer/:
  vocab.json, merges.txt   the real CLIP vocabulary (all 48894 merges, 49408 tokens)
  golden.json              >= 250 strings with transformers' ids and decodes, full vocabulary
  unicode.json             every code point's class under CLIP's split regex and its normalised form
  reduced/                 a 1000-merge vocabulary (1514 tokens): vocab.json, merges.txt,
                           tokenizer.json, tokenizer_config.json, special_tokens_map.json, golden.json

Reference: transformers.CLIPTokenizer (5.24.0, backed by tokenizers), loaded with from_pretrained
from the folder. ids = tok(text, truncation=True, max_length=L)["input_ids"] (truncation=False
where L is null); decoded = tok.decode(ids, skip_special_tokens=True). Every case is checked to give
the same ids whether the tokenizer was loaded from vocab.json + merges.txt or from tokenizer.json.

Usage: python Tools/make_tokenizer_fixtures.py [--bpe PATH_TO_bpe_simple_vocab_16e6.txt.gz]
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip_vocab import write_clip_tokenizer_files  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "clip-tokenizer"
REDUCED_MERGES = 1000

LONG_1 = ("A photograph of a crowded warehouse aisle where several workers in bright yellow vests are moving "
          "pallets of boxes, while a forklift waits near the loading dock and a small robot scans barcodes on "
          "the shelves, under flickering fluorescent lights, late at night, during the busiest week of the year.")


def golden_strings() -> list[tuple[str, int | None]]:
    """(text, max_length) pairs; max_length None means no truncation."""
    s: list[str] = []
    # ASCII sentences
    s += [
        "a photo of a cat", "A photo of a dog.", "Is there a person in the aisle?", "hello world",
        "Hello, World!", "The quick brown fox jumps over the lazy dog.", "a red car parked next to a blue truck",
        "A man riding a horse on the beach at sunset", "two people walking in the rain with umbrellas",
        "an empty parking lot", "a forklift carrying boxes", "The cat sat on the mat.",
        "Robots are sorting packages on a conveyor belt", "a bowl of fruit on a wooden table",
        "PEDESTRIAN CROSSING THE STREET", "sTrAnGe CaSiNg In ThIs SeNtEnCe", "x", "I", "a", "ab",
        "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
        "pneumonoultramicroscopicsilicovolcanoconiosis", "the the the the the", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "zzzzzzzzzz", "qwertyuiop asdfghjkl zxcvbnm", "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "A dog. A cat. A bird.", "an astronaut riding a horse in photorealistic style",
    ]
    # questions
    s += [
        "What is the man holding?", "How many people are in the picture?", "Is the traffic light red?",
        "Where is the forklift?", "Why is the door open?", "Who left the box in the aisle??",
        "is there smoke?!", "Are there any cars on the road", "What color is the truck?", "Is anyone falling down?",
        "Can you see a fire extinguisher?", "Which shelf is empty?", "did the robot stop???", "Is it day or night?",
        "When did the truck arrive?",
    ]
    # punctuation runs
    s += [
        "!!!", "...", "?!?!", "hello...world", "wait---what", "--", "(parenthesised)", "[brackets] {braces}",
        "\"quoted\"", "'single quoted'", "a,b,c", "a;b:c", "#hashtag @mention", "100% sure!!!", "$$$ money $$$",
        "~~~tilde~~~", "***", "<<>>", "a/b\\c", "x+y=z", "5*3-2", "^_^", ":-)", ";)", "...!?", "__init__",
        "*emphasis* and _underline_", "&&||", "`backticks`", "¡Hola!", "¿Qué?", "«guillemets»", "„German quotes“",
        "—em dash— and –en dash–", "…ellipsis…", "•bullet", "©2024 ®TM™", "§ 12 ¶ 3", "†‡", "±×÷",
    ]
    # digits and numbers
    s += [
        "0", "7", "42", "2024", "1234567890", "3.14159", "1,000,000", "1 000 000", "10:30 am", "2024-01-15",
        "12/31/1999", "+1 (555) 123-4567", "v1.2.3", "0x1F", "1e-5", "-42", "50%", "$19.99", "€5,50", "3rd 21st 2nd",
        "room 101", "catch-22", "4k", "1080p60", "H2O", "CO2 levels", "mp3", "B-52", "covid19", "²³ x² ½ ¼",
        "Ⅻ ⅻ Ⅳ", "① ② ③", "٣٤٥ arabic-indic", "१२३ devanagari", "１２３ fullwidth", "๑๒๓",
    ]
    # accented Latin, mixed case
    s += [
        "café", "CAFÉ", "Café au lait", "naïve résumé", "NAÏVE RÉSUMÉ", "über", "ÜBER Straße", "Müller", "MÜLLER",
        "señor niño", "SEÑOR NIÑO", "ça va", "FRANÇAIS", "garçon", "Crème Brûlée", "Ångström", "Øresund", "Łódź",
        "Dvořák", "Škoda", "Ægir", "straße STRASSE", "İstanbul", "ISTANBUL ıi", "Çok güzel", "Ñandú", "façade",
        "e\u0301clair", "E\u0301CLAIR", "n\u0303", "a\u0308bc", "Zoë", "Noël", "Þór", "œuvre ŒUVRE",
    ]
    # Greek, Cyrillic, CJK, other scripts
    s += [
        "Γειά σου Κόσμε", "ΣΟΦΟΣ", "σοφός", "Αθήνα", "ΑΘΗΝΑ", "λόγος", "Ωμέγα",
        "Привет, мир!", "ПРИВЕТ", "Москва", "ёжик ЁЖИК", "Україна", "щука", "Съешь же ещё этих мягких французских булок",
        "你好世界", "猫が座っている", "東京タワー", "한국어 텍스트", "中文，标点。", "ｈｅｌｌｏ ＷＯＲＬＤ", "ｶﾀｶﾅ",
        "一二三", "漢字かなカナ", "😀中文😀",
        "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "हिन्दी", "สวัสดีครับ", "ქართული", "Ⴀ Ⴁ", "Ꭰ ꭰ", "Հայերեն",
        "ᚠᚢᚦ runes", "𝒜𝓁𝓅𝒽𝒶", "𝐁𝐨𝐥𝐝", "ﬁne ﬂour", "Kelvin K", "Å angstrom",
    ]
    # emoji
    s += [
        "😀", "😀😃😄", "I love 🍕!", "🐶 and 🐱", "👍🏽", "👋🏿 hi", "👨‍👩‍👧‍👦", "👩🏽‍💻 coding",
        "🏳️‍🌈", "❤️", "❤", "🇺🇸🇬🇧", "1️⃣", "🚗💨", "☃", "✔︎ done", "🤷‍♂️", "🧑🏻‍🦰", "a😀b", "smile:😀:",
    ]
    # whitespace
    s += [
        "hello\tworld", "hello\nworld", "hello\r\nworld", "hello     world", "  leading", "trailing   ",
        "  both  ", "\ttab start", "new\n\n\nlines", "mixed \t \n spaces", "non\u00a0breaking", "ideo\u3000space",
        "em\u2003space", "zero\u200bwidth", "line\u2028sep", "para\u2029sep", "nel\u0085char", "vt\x0bff\x0c",
        "soft\u00adhyphen", "bom\ufeffchar", "joiner\u200dword", "narrow\u202fnbsp", "ogham\u1680space",
        "a\u180eb", "x\x1cy\x1dz\x1ew\x1f", "ctrl\x00\x01\x07chars",
    ]
    # empty and whitespace only
    s += ["", " ", "   ", "\t", "\n", "\r\n", " \t\n ", "\u3000", "\u00a0"]
    # HTML-ish, code, URLs
    s += [
        "<b>bold</b>", "<div class=\"box\">text</div>", "&amp; &lt; &gt; &quot;", "<br/>", "<!-- comment -->",
        "<img src='cat.png' alt=\"a cat\">", "<p>Hello&nbsp;there</p>", "</w>", "a</w>b", "<w>",
        "def foo(x): return x**2", "for (int i = 0; i < n; ++i) { sum += a[i]; }", "print(\"hello\")",
        "let x: [Int] = []", "if a != b && c >= d:", "SELECT * FROM users WHERE id = 42;",
        "import numpy as np\nnp.zeros((3, 4))", "x => x * 2", "#include <stdio.h>", "fn main() { println!(\"hi\"); }",
        "https://example.com", "http://www.example.org/path/to/page.html?q=cats&lang=en#top",
        "ftp://files.example.net/pub/", "user@example.com", "rtsp://192.168.1.10:554/stream1",
        "www.google.com", "file:///home/user/video.mp4", "https://en.wikipedia.org/wiki/Contrastive_Language-Image_Pretraining",
        "C:\\Users\\me\\Desktop", "~/projects/atp/Sources",
    ]
    # contractions (straight and curly)
    s += [
        "it's", "It's", "IT'S", "don't", "DON'T", "you're", "YOU'RE", "we've", "I'm", "I'M", "they'll", "she'd",
        "it’s", "don’t", "you’re", "we’ve", "I’m", "they’ll", "she’d", "rock 'n' roll", "'tis", "'sup", "o'clock",
        "the dog's bone", "the dogs' bones", "''s", "'''", "can't won't shouldn't", "y'all'd've", "'S 'T 'RE 'VE 'M 'LL 'D",
        "'s't're've'm'll'd", "'x", "'", "hello'", "ʼapostrophe modifier",
    ]
    # special-token strings inside text
    s += [
        "<|endoftext|>", "<|startoftext|>", "<|ENDOFTEXT|>", "<|EndOfText|>!!", "a<|startoftext|>b",
        "!!<|endoftext|>", "<|endoftext|>!!", "<|endoftext", "<|startoftext|><|endoftext|>", "x <|endoftext|> y",
        "<|startoftext|> hello <|endoftext|>", "<||>", "<|endoftext|><|endoftext|><|endoftext|>", "<|endoftext|>\u00e9",
    ]
    cases: list[tuple[str, int | None]] = [(t, 77) for t in s]
    # very long inputs: truncated at 77 (and other lengths), and untruncated
    long_texts = [
        LONG_1, LONG_1.upper(), " ".join(str(i) for i in range(200)), "word " * 100, "😀" * 50,
        "a, " * 60, "".join(chr(0x4E00 + i) for i in range(120)), "Ünïcödé " * 40,
        "x" * 500, "!" * 300, ("it's " * 40).strip(), "<|endoftext|>" * 100,
    ]
    cases += [(t, 77) for t in long_texts]
    cases += [(LONG_1, None), ("word " * 100, None), ("😀" * 50, None), (" ".join(str(i) for i in range(100)), None)]
    cases += [(LONG_1, 2), (LONG_1, 3), (LONG_1, 10), (LONG_1, 16), ("hello world", 1), ("hello world", 0),
              ("hello world foo", 3), ("😀 😀", 4), ("", 2), ("a <|endoftext|> b c d", 4)]
    # seeded random strings over a mixed alphabet
    rng = random.Random(20240601)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + list(" \t\n.,!?'’\"-_/()<>|:;@#") + \
        list("éÉüÜñÑçÇßøåæœ") + list("αβγΣσπДЖжщ") + list("中文日本語한국") + ["😀", "👍🏽", "👨‍👩‍👧", "❤️"] + ["\u0301", "\u00a0", "\u3000"]
    for _ in range(40):
        n = rng.randint(1, 40)
        cases.append(("".join(rng.choice(alphabet) for _ in range(n)), 77))
    return cases


def reduced_strings() -> list[tuple[str, int | None]]:
    s = [
        "a photo of a cat", "Is there a person in the aisle?", "Hello, World!", "The quick brown fox jumps over the lazy dog.",
        "supercalifragilisticexpialidocious", "PEDESTRIAN CROSSING", "what's happening", "it’s fine", "I'm here", "they'll go",
        "2024-01-15 10:30", "3.14159", "$19.99", "1,000,000", "café CAFÉ", "naïve résumé", "Straße", "İstanbul",
        "Γειά σου", "Привет мир", "你好世界", "한국어", "😀👍🏽", "👨‍👩‍👧‍👦", "hello\tworld\n", "  spaced   out  ",
        "", " ", "<b>bold</b>", "https://example.com/a?b=c", "def f(x): return x", "<|endoftext|>", "a<|startoftext|>b",
        "<|ENDOFTEXT|>!!", "!!!???", "...", "x" * 300, LONG_1, "forklift warehouse aisle", "e\u0301clair",
        "ΣΟΦΟΣ", "ﬁne", "１２３", "①②", "zero\u200bwidth", "a\u00a0b", "'s 't 're 've 'm 'll 'd", "rock 'n' roll",
        "</w>", "the dog's bone",
    ]
    cases = [(t, 77) for t in s]
    cases += [(LONG_1, None), (LONG_1, 10), ("hello world", 1)]
    return cases


def load_pair(folder: Path):
    """The tokenizer loaded from vocab.json + merges.txt, and the one loaded from tokenizer.json."""
    from transformers import CLIPTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        slow_dir = Path(tmp) / "slow"
        slow_dir.mkdir()
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(folder / name, slow_dir / name)
        slow = CLIPTokenizer.from_pretrained(str(slow_dir))
        fast = CLIPTokenizer.from_pretrained(str(folder)) if (folder / "tokenizer.json").exists() else None
    return slow, fast


def encode(tok, text: str, max_length: int | None) -> list[int]:
    if max_length is None:
        return tok(text, truncation=False)["input_ids"]
    return tok(text, truncation=True, max_length=max_length)["input_ids"]


def make_golden(folder: Path, cases: list[tuple[str, int | None]], note: str) -> dict:
    import tokenizers
    import transformers
    slow, fast = load_pair(folder)
    out = []
    seen = set()
    for text, max_length in cases:
        if (text, max_length) in seen:
            continue
        seen.add((text, max_length))
        ids = encode(slow, text, max_length)
        if fast is not None:
            ids_fast = encode(fast, text, max_length)
            assert ids == ids_fast, f"tokenizer.json and vocab/merges disagree on {text!r}: {ids_fast} vs {ids}"
        decoded = slow.decode(ids, skip_special_tokens=True)
        out.append({"text": text, "max_length": max_length, "ids": ids, "decoded": decoded})
    return {
        "generator": "Tools/make_tokenizer_fixtures.py",
        "note": note,
        "reference": f"{type(slow).__module__}.{type(slow).__name__}",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "call": "ids = tok(text, truncation=True, max_length=max_length)['input_ids'] "
                "(truncation=False when max_length is null); decoded = tok.decode(ids, skip_special_tokens=True)",
        "vocab_size": len(slow),
        "bos_token_id": slow.bos_token_id,
        "eos_token_id": slow.eos_token_id,
        "count": len(out),
        "cases": out,
    }


def unicode_tables() -> dict:
    """Per-code-point behaviour of the reference's normaliser and split pattern, over all of Unicode.

    classes: [first, last, class] ranges, class one of "s" (regex \\s), "l" (\\p{L}), "n" (\\p{N}),
    "o" (anything else), "x" (surrogates, not scalars). Probed through the CLIP Split pre-tokeniser:
    c alone gives no piece -> s; c+c gives two pieces -> n; c+"!" gives one piece -> o; else l.
    normalized: {code point: [code points]} wherever the normaliser (NFC, \\s+ -> " ", Lowercase)
    changes the one-character string chr(c).
    """
    from tokenizers import Regex, normalizers, pre_tokenizers
    from transformers import CLIPTokenizer
    backend = CLIPTokenizer().backend_tokenizer
    normalizer = backend.normalizer
    split = pre_tokenizers.Split(
        Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
        behavior="removed", invert=True)
    # the probe pattern must be the one transformers installs
    assert json.loads(backend.pre_tokenizer.__getstate__())["pretokenizers"][0] == json.loads(split.__getstate__())

    def pieces(t: str) -> int:
        return len(split.pre_tokenize_str(t))

    classes = []
    normalized = {}
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            classes.append("x")
            continue
        ch = chr(c)
        if pieces(ch) == 0:
            k = "s"
        elif pieces(ch + ch) == 2:
            k = "n"
        elif pieces(ch + "!") == 1:
            k = "o"
        else:
            k = "l"
        classes.append(k)
        out = normalizer.normalize_str(ch)
        if out != ch:
            normalized[str(c)] = [ord(x) for x in out]
    ranges = []
    start = 0
    for i in range(1, 0x110001):
        if i == 0x110000 or classes[i] != classes[start]:
            ranges.append([start, i - 1, classes[start]])
            start = i
    import tokenizers
    return {"generator": "Tools/make_tokenizer_fixtures.py", "tokenizers": tokenizers.__version__,
            "classes": ranges, "normalized": normalized}


def write_json(path: Path, obj: dict) -> None:
    """Header fields one per line, then one line per case (keeps diffs readable and the file small)."""
    head = {k: v for k, v in obj.items() if k != "cases"}
    lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    cases = [f"  {json.dumps(c, ensure_ascii=False)}" for c in obj["cases"]]
    text = "{\n" + "\n".join(lines) + '\n "cases": [\n' + ",\n".join(cases) + "\n ]\n}\n"
    assert json.loads(text) == obj
    path.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpe", default=None, help="path to bpe_simple_vocab_16e6.txt.gz (default: find or pip download)")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    # Full vocabulary: only vocab.json + merges.txt are committed (the Swift test builds a
    # tokenizer.json for it from reduced/tokenizer.json, to keep the fixtures small).
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full"
        write_clip_tokenizer_files(full, None, args.bpe, with_tokenizer_json=True)
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(full / name, OUT / name)
        golden = make_golden(full, golden_strings(), "full CLIP vocabulary (48894 merges)")
    write_json(OUT / "golden.json", golden)
    print(f"golden.json: {golden['count']} cases, vocab {golden['vocab_size']}")

    tables = unicode_tables()
    (OUT / "unicode.json").write_text(json.dumps(tables, ensure_ascii=True, separators=(",", ":")) + "\n")
    print(f"unicode.json: {len(tables['classes'])} class ranges, {len(tables['normalized'])} normalised code points")

    reduced = OUT / "reduced"
    write_clip_tokenizer_files(reduced, REDUCED_MERGES, args.bpe, with_tokenizer_json=True)
    rgolden = make_golden(reduced, reduced_strings(), f"reduced CLIP vocabulary (first {REDUCED_MERGES} merges)")
    write_json(reduced / "golden.json", rgolden)
    print(f"reduced/golden.json: {rgolden['count']} cases, vocab {rgolden['vocab_size']}")


if __name__ == "__main__":
    main()
