#!/usr/bin/env python3
"""Writes the tiny Llama GGUF that scripts/soak.sh trains: base_llama's weights (Tests/Fixtures/peft/base_llama,
hidden 64, 2 layers, vocab 256) with a byte-level BPE vocabulary, as Tests/TestSupport/TinyLlamaGGUF.swift does.
The q/k rope row order is not converted (the soak run measures memory over time, not model quality).
usage: soak_model.py OUT.gguf"""
import json, os, struct, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
with open(os.path.join(root, "Tests/Fixtures/peft/base_llama/model.safetensors"), "rb") as f:
    raw = f.read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]

names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
         "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
def gguf_name(hf):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf in fixed: return fixed[hf]
    p = hf.split(".")
    return f"blk.{p[2]}.{names['.'.join(p[3:-1])]}.{p[-1]}"

tensors = []
for hf, info in sorted(header.items()):
    if hf == "__metadata__": continue
    assert info["dtype"] == "F32", hf
    a, b = info["data_offsets"]
    tensors.append((gguf_name(hf), info["shape"], data[a:b]))

def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
def u32(v): return struct.pack("<I", 4) + struct.pack("<I", v)
def f32(v): return struct.pack("<I", 6) + struct.pack("<f", v)
def string(v): return struct.pack("<I", 8) + s(v)
def strings(items): return struct.pack("<IIQ", 9, 8, len(items)) + b"".join(s(i) for i in items)
def i32s(items): return struct.pack("<IIQ", 9, 5, len(items)) + b"".join(struct.pack("<i", i) for i in items)

tokens, types = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], [3, 3, 3]
symbol = lambda c: {0x20: "\u0120", 0x0A: "\u010A"}.get(c, chr(c))
for c in [0x0A] + list(range(0x20, 0x7F)): tokens.append(symbol(c)); types.append(1)
pairs = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "s")]
for a, b in pairs: tokens.append(a + b); types.append(1)
while len(tokens) < 256: tokens.append(f"<unused{len(tokens)}>"); types.append(5)
template = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
meta = [("general.architecture", string("llama")), ("general.name", string("tiny llama (soak)")),
        ("llama.embedding_length", u32(64)), ("llama.feed_forward_length", u32(128)), ("llama.block_count", u32(2)),
        ("llama.attention.head_count", u32(4)), ("llama.attention.head_count_kv", u32(2)), ("llama.rope.dimension_count", u32(16)),
        ("llama.rope.freq_base", f32(10000)), ("llama.attention.layer_norm_rms_epsilon", f32(1e-5)),
        ("llama.context_length", u32(128)), ("llama.vocab_size", u32(256)),
        ("tokenizer.ggml.model", string("gpt2")), ("tokenizer.ggml.pre", string("smollm")), ("tokenizer.ggml.tokens", strings(tokens)),
        ("tokenizer.ggml.token_type", i32s(types)), ("tokenizer.ggml.merges", strings([f"{a} {b}" for a, b in pairs])),
        ("tokenizer.ggml.bos_token_id", u32(1)), ("tokenizer.ggml.eos_token_id", u32(2)), ("tokenizer.ggml.unknown_token_id", u32(0)),
        ("tokenizer.ggml.padding_token_id", u32(2)), ("tokenizer.ggml.add_bos_token", struct.pack("<IB", 7, 0)),
        ("tokenizer.chat_template", string(template))]
out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
for k, v in meta: out += s(k) + v
offset, body = 0, b""
for name, shape, payload in tensors:
    out += s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in reversed(shape)) + struct.pack("<IQ", 0, len(body))
    body += payload + b"\0" * (-len(payload) % 32)
out += b"\0" * (-len(out) % 32)
with open(sys.argv[1], "wb") as f: f.write(out + body)
