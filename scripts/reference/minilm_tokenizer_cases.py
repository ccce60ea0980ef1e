#!/usr/bin/env python3
"""Reference WordPiece cases for LoRAKit's tokenizer tests, from Hugging Face `tokenizers` on
all-MiniLM-L6-v2's tokenizer.json.

Writes Tests/Fixtures/minilm/tokenizer_cases.json:
  singles: [{text, ids}]                 ids with [CLS] ... [SEP], no truncation
  pairs:   [{text, pair, max_length, ids, type_ids}]   pair encodings truncated longest-first
  truncated: [{text, max_length, ids}]   single encodings truncated
The texts are hand-picked edge cases plus seeded random strings drawn from many scripts.

usage: scripts/reference/minilm_tokenizer_cases.py MODEL_DIR OUT.json
"""
import json
import random
import sys

from tokenizers import Tokenizer

model_dir, out_path = sys.argv[1], sys.argv[2]
tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
tok.no_truncation()
tok.no_padding()

hand = [
    "", " ", "Hello, world!", "HELLO World", "don't stop-believing...", "e-mail: someone@example.com",
    "Ünïcödé àccents: café, naïve, résumé, Ångström, Øresund, Straße", "İstanbul ǅ ﬁ ﬀ Ⅻ ①",
    "深度学习 and 机器学习 (中文)", "日本語のテキスト、ひらがな カタカナ", "한국어 문장입니다", "Ελληνικά ΣΊΣΥΦΟΣ ς", "Русский текст, ёж",
    "emoji 🤗🚀👍🏽 family 👨‍👩‍👧", "tabs\tand\nnewlines\r\nand  spaces", "zero\u200bwidth\u200djoiner\ufeffbom",
    "control\x00\x01\x7f chars\ufffd", "[CLS] inline [SEP] special [MASK] tokens [UNK] [PAD]", "[mask] lower [cls]",
    "$100 + 5% = <tag> ^ ` | ~ {x} [y]", "a" * 99, "b" * 100, "c" * 101, "supercalifragilisticexpialidocious",
    "unaffable unbelievably antidisestablishmentarianism", "1234567890 3.14159 1,000,000 1e-5",
    "العربية نص", "עברית", "हिन्दी पाठ", "ไทย ภาษา", "Tiếng Việt có dấu", "combining e\u0301 a\u0300 o\u0308",
    "‘quotes’ “double” «guillemets» — dash – en … ellipsis", "under_score CamelCase snake_case_name",
    "http://example.com/path?q=1&x=2#frag", "C++ C# F# .NET node.js", "x" + "\u0301" * 5, "\u00a0nbsp\u2003em\u3000ideographic",
    "Low-rank adaptation (LoRA) freezes the pretrained weights.", "🤗" * 3 + "text", "ǰ̣", "ﾊﾝｶｸ ｶﾀｶﾅ", "ＦＵＬＬＷＩＤＴＨ １２３",
]
alphabets = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " \t\n", ".,;:!?'\"()[]{}-_/\\@#$%^&*+=<>|~`",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßÀÉÎÕÜ", "αβγδεζηθικλμνξοπρστυφχψωΣΩ", "абвгдежзийклмнопрстуфхцчшщъыьэюяЁ",
    "的一是不了人我在有他这为之大来以个中上们", "あいうえおかきくけこアイウエオ", "가나다라마바사", "🤗🚀👍😀🎉", "\u0301\u0308\u0327\u200b\u00ad\u2028",
]
rng = random.Random(15)
fuzz = []
for _ in range(150):
    n = rng.randint(1, 60)
    picks = [rng.choice(alphabets) for _ in range(3)]
    fuzz.append("".join(rng.choice(rng.choice(picks)) for _ in range(n)))

singles = [{"text": t, "ids": tok.encode(t).ids} for t in hand + fuzz]

pairs = []
pair_texts = [("How old are you?", "I am six years old."), ("A man is eating food.", "A man is eating a piece of bread."),
              ("short", "a much longer second sentence that goes on and on and on for quite a while"),
              ("a much longer first sentence that goes on and on and on for quite a while", "short"),
              ("équipe café", "深度学习")]
for i in range(20):
    pair_texts.append((fuzz[i], fuzz[i + 20]))
for a, b in pair_texts:
    for max_length in (None, 8, 13, 20):
        if max_length is None:
            tok.no_truncation()
        else:
            tok.enable_truncation(max_length=max_length)
        e = tok.encode(a, b)
        pairs.append({"text": a, "pair": b, "max_length": max_length, "ids": e.ids, "type_ids": e.type_ids})
truncated = []
for t in hand[:20] + fuzz[:20]:
    for max_length in (3, 6, 16):
        tok.enable_truncation(max_length=max_length)
        truncated.append({"text": t, "max_length": max_length, "ids": tok.encode(t).ids})
tok.no_truncation()

with open(out_path, "w", encoding="utf-8") as f:
    json.dump({"tokenizers_version": __import__("tokenizers").__version__, "singles": singles, "pairs": pairs,
               "truncated": truncated}, f, ensure_ascii=False, separators=(",", ":"))
print(f"{out_path}: {len(singles)} singles, {len(pairs)} pairs, {len(truncated)} truncated")
