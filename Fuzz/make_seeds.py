#!/usr/bin/env python3
"""Writes the small seed corpora in Fuzz/Corpus/<target>/ (committed; rerun only to regenerate them).
Each seed is a valid input that reaches deep into its parser; libFuzzer mutates from there."""
import json, os, struct, random

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")
rng = random.Random(16)

def put(target, name, data):
    os.makedirs(os.path.join(root, target), exist_ok=True)
    with open(os.path.join(root, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# ggml block sizes: type id -> (elements per block, bytes per block)
BLOCKS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
          12: (256, 144), 13: (256, 176), 14: (256, 210)}

def half(x):
    return struct.pack("<e", x)

def block(type_id):
    n, size = BLOCKS[type_id]
    if type_id == 0: return struct.pack("<f", rng.uniform(-1, 1))
    if type_id in (1, 30): return half(rng.uniform(-1, 1)) if type_id == 1 else struct.pack("<f", rng.uniform(-1, 1))[2:]
    raw = bytearray(rng.getrandbits(8) for _ in range(size))
    # Put sane f16 scales where the format keeps them, so dequantised values are finite.
    if type_id in (2, 3, 6, 7, 8, 12, 13): raw[0:2] = half(0.01)
    if type_id in (3, 7, 12, 13): raw[2:4] = half(0.005)
    if type_id == 14: raw[208:210] = half(0.01)
    return bytes(raw)

def gguf_string(s):
    b = s.encode(); return struct.pack("<Q", len(b)) + b

def gguf(tensors, metadata):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, (vtype, payload) in metadata:
        out += gguf_string(key) + struct.pack("<I", vtype) + payload
    data, infos = b"", b""
    for name, dims, type_id in tensors:
        n, size = BLOCKS[type_id]
        count = 1
        for d in dims: count *= d
        body = b"".join(block(type_id) for _ in range(count // n))
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", type_id, len(data))
        data += body + b"\0" * (-len(body) % 32)
    out += infos
    out += b"\0" * (-len(out) % 32)
    return out + data

def strings(items):
    return struct.pack("<IQ", 8, len(items)) + b"".join(gguf_string(s) for s in items)

tokens = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["Ġ", "ab", "<|im_start|>", "<|im_end|>"]
meta = [("general.architecture", (8, gguf_string("llama"))), ("general.alignment", (4, struct.pack("<I", 32))),
        ("llama.embedding_length", (4, struct.pack("<I", 32))), ("llama.block_count", (4, struct.pack("<I", 1))),
        ("llama.attention.head_count", (4, struct.pack("<I", 2))),
        ("tokenizer.ggml.model", (8, gguf_string("gpt2"))), ("tokenizer.ggml.tokens", (9, strings(tokens))),
        ("tokenizer.ggml.merges", (9, strings(["a b"]))),
        ("tokenizer.ggml.token_type", (9, struct.pack("<IQ", 5, len(tokens)) + b"".join(struct.pack("<i", 3 if t.startswith("<|") else 1) for t in tokens)))]
put("gguf", "dense_types", gguf([("a.f32", [4, 2], 0), ("b.f16", [8], 1), ("c.bf16", [2, 2], 30)], meta[:2]))
put("gguf", "block_types", gguf([("q4_0", [32, 2], 2), ("q4_1", [32], 3), ("q5_0", [32], 6), ("q5_1", [32], 7),
                                      ("q8_0", [64], 8)], meta[:1]))
put("gguf", "k_types", gguf([("q4_K", [256], 12), ("q5_K", [256], 13), ("q6_K", [256, 1], 14)], meta[:1]))
put("gguf", "llama_tokenizer", gguf([("token_embd.weight", [32, 30], 0)], meta))

order = [0, 1, 30, 2, 3, 6, 7, 8, 12, 13, 14]   # the harness's selector order: GGMLType.allCases, dequantizable
for index, type_id in enumerate(order):
    put("dequantize", f"{type_id:02d}", bytes([index]) + b"".join(block(type_id) for _ in range(2)))

def safetensors(entries, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, body in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(body)]}
        data += body
    if metadata: header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

floats = lambda n: struct.pack(f"<{n}f", *[rng.uniform(-1, 1) for _ in range(n)])
put("safetensors", "mixed.safetensors", safetensors([
    ("w", "F32", [2, 3], floats(6)), ("h", "F16", [2], half(0.5) + half(-2)), ("b", "BF16", [1], floats(1)[2:]),
    ("i", "I64", [2], struct.pack("<2q", -1, 7)), ("m", "BOOL", [3], b"\x00\x01\x01"), ("e", "F32", [0], b"")],
    {"format": "pt"}))
put("safetensors", "f64_i32.safetensors", safetensors([("d", "F64", [2], struct.pack("<2d", 1.5, -3)),
                                                      ("j", "I32", [1, 1], struct.pack("<i", 3)), ("u", "U8", [2], b"\x01\xff")]))

lora = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
        "bias": "none", "task_type": "CAUSAL_LM", "use_rslora": False, "init_lora_weights": True,
        "fan_in_fan_out": False, "rank_pattern": {}, "alpha_pattern": {}, "base_model_name_or_path": "tiny"}
adalora = {"peft_type": "ADALORA", "r": 2, "init_r": 4, "target_r": 2, "lora_alpha": 4, "tinit": 1, "tfinal": 1,
           "deltaT": 1, "beta1": 0.85, "beta2": 0.85, "orth_reg_weight": 0.5, "total_step": 10,
           "target_modules": ["q_proj"], "rank_pattern": {"model.layers.0.self_attn.q_proj.lora_E": [True, False, True, False]}}
put("adapter-config", "lora.json", json.dumps(lora))
put("adapter-config", "lora_patterns.json", json.dumps(dict(lora, target_modules="all-linear", rank_pattern={"q_proj": 4},
                                                            alpha_pattern={"v_proj": 8}, layers_to_transform=[0], use_rslora=True)))
put("adapter-config", "adalora.json", json.dumps(adalora))

def adapter_dir(config, tensors):
    c = json.dumps(config).encode()
    return struct.pack("<H", len(c)) + c + safetensors(tensors)

shapes = {"self_attn.q_proj": (8, 16), "self_attn.v_proj": (8, 16)}
lora_tensors = []
for layer in range(2):
    for module, (out, inp) in shapes.items():
        prefix = f"base_model.model.model.layers.{layer}.{module}"
        lora_tensors += [(prefix + ".lora_A.weight", "F32", [2, inp], floats(2 * inp)), (prefix + ".lora_B.weight", "F32", [out, 2], floats(out * 2))]
put("adapter-directory", "lora", adapter_dir(lora, lora_tensors))
ada_tensors = []
for layer in range(2):
    prefix = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
    ada_tensors += [(prefix + ".lora_A", "F32", [2, 16], floats(32)), (prefix + ".lora_E", "F32", [2, 1], floats(2)),
                    (prefix + ".lora_B", "F32", [8, 2], floats(16))]
put("adapter-directory", "adalora", adapter_dir(dict(adalora, rank_pattern={
    f"model.layers.{l}.self_attn.q_proj.lora_E": [True, False, True, False] for l in range(2)}), ada_tensors))

fixtures = os.path.join(os.path.dirname(root), "..", "Tests", "Fixtures", "tokenizer")
for name in ("tiny_tokenizer.json", "tiny_tokenizer_pair_merges.json"):
    with open(os.path.join(fixtures, name), "rb") as f: put("tokenizer", name, f.read())
with open(os.path.join(fixtures, "tiny_tokenizer_config.json"), "rb") as f: put("chat-template", "tokenizer_config.json", f.read())

chatml = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n"
          "You are a helpful AI assistant named SmolLM<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
llama3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
          "message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
put("chat-template", "chatml.jinja", chatml)
put("chat-template", "llama3.jinja", llama3)

put("jsonl", "text.jsonl", '{"text": "Hello world"}\n{"text": "second line"}\n')
put("jsonl", "prompt_completion.jsonl", '{"prompt": "2024-01-05 ->", "completion": " 5 January 2024"}\n\n{"prompt": "a", "completion": "b"}\n')
put("jsonl", "messages.jsonl", json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                                       {"role": "assistant", "content": "a"}]}) + "\n")
put("jsonl", "conversational_prompt.jsonl", json.dumps({"prompt": [{"role": "user", "content": "q"}],
                                                        "completion": [{"role": "assistant", "content": "r"}]}) + "\n")

run = {"model": "models/smollm2/model.gguf", "data": "data", "out": "out", "rank": 8, "alpha": 16, "dropout": 0.05,
       "targets": ["q_proj", "v_proj"], "iters": 100, "batch_size": 4, "grad_accum": 2, "max_length": 256,
       "learning_rate": 2e-4, "warmup": 10, "schedule": "cosine", "eval_every": 20, "save_every": 50,
       "keep_checkpoints": 2, "seed": 0, "packing": False}
put("run-config-json", "lora.json", json.dumps(run))
put("run-config-json", "adalora.json", json.dumps({"method": "adalora", "init_r": 12, "target_r": 4, "tinit": 10, "tfinal": 20,
                                                  "deltaT": 5, "lr": 1e-3, "max_steps": 100}))
put("run-config-yaml", "lora.yaml", "".join(f"{k}: {json.dumps(v)}\n" for k, v in run.items()))
put("run-config-yaml", "adalora.yaml", "method: adalora\ninit_r: 12\ntarget_r: 4\ntinit: 10\ntfinal: 20\nlearning-rate: 1.0e-3\n"
                                       "targets:\n  - q_proj\n  - v_proj\nrecompute_activations: true\n")
