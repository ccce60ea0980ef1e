#!/usr/bin/env python3
"""Export SmolLM2's tokenizer metadata from its GGUF into a compact JSON test fixture.

Reads the GGUF with the PyPI `gguf` package (pure Python, `pip install gguf`) and writes the
fields the Swift BPETokenizer takes as plain data, named after their GGUF keys:
  tokens, merges, token_types (tokenizer.ggml.*), model, pre, bos/eos/unknown/padding ids,
  add_bos_token, and chat_template (tokenizer.chat_template).

Usage:
  python3 scripts/reference/export_smollm_tokenizer.py \
      [models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf] [Tests/Fixtures/smollm/tokenizer_vocab.json]
"""
import json
import sys
from pathlib import Path

from gguf import GGUFReader, GGUFValueType

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GGUF = ROOT / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = ROOT / "Tests" / "Fixtures" / "smollm" / "tokenizer_vocab.json"


def field_value(reader, key):
    """Scalar, string, or array value of a GGUF key; None if absent."""
    field = reader.fields.get(key)
    if field is None:
        return None
    kind = field.types[0]
    if kind == GGUFValueType.ARRAY:
        element = field.types[1]
        if element == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if kind == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


def main():
    gguf_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_GGUF
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    reader = GGUFReader(str(gguf_path))
    keys = {
        "model": "tokenizer.ggml.model",
        "pre": "tokenizer.ggml.pre",
        "tokens": "tokenizer.ggml.tokens",
        "merges": "tokenizer.ggml.merges",
        "token_types": "tokenizer.ggml.token_type",
        "bos_token_id": "tokenizer.ggml.bos_token_id",
        "eos_token_id": "tokenizer.ggml.eos_token_id",
        "unknown_token_id": "tokenizer.ggml.unknown_token_id",
        "padding_token_id": "tokenizer.ggml.padding_token_id",
        "add_bos_token": "tokenizer.ggml.add_bos_token",
        "chat_template": "tokenizer.chat_template",
    }
    export = {name: field_value(reader, key) for name, key in keys.items()}
    missing = [keys[name] for name in ("tokens", "merges", "model") if export[name] is None]
    if missing:
        sys.exit(f"{gguf_path}: missing GGUF keys {missing}")
    if export["token_types"] is not None and len(export["token_types"]) != len(export["tokens"]):
        sys.exit(f"{gguf_path}: token_type has {len(export['token_types'])} entries, tokens {len(export['tokens'])}")
    export["add_bos_token"] = bool(export["add_bos_token"]) if export["add_bos_token"] is not None else None
    export["source"] = gguf_path.name
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Compact: no indentation, UTF-8 kept as is (byte-level symbols such as "Ġ" would triple as \u escapes).
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(export, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{out_path}: {len(export['tokens'])} tokens, {len(export['merges'])} merges, "
          f"pre={export['pre']!r}, {out_path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
