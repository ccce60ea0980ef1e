#!/usr/bin/env python3
"""Tiny random-weight models of the decoder families LoRAKit loads, with transformers' logits and greedy tokens.

    /work/torchenv/bin/python scripts/reference/make_family_fixtures.py Tests/Fixtures/families
    (torch 2.15, transformers 5.25, gguf 0.19)

For each family (llama with attention and MLP biases, mistral, qwen2, qwen3) it writes
  <family>/hf/        config.json + model.safetensors (transformers' save_pretrained)
  <family>/model.gguf the same weights as llama.cpp's converter lays them out: llama.cpp tensor names, F32,
                      architecture "llama" for Llama and Mistral (q/k weight rows and biases permuted into
                      llama.cpp's interleaved rope order), "qwen2" / "qwen3" unpermuted (NeoX rope), and a tiny
                      byte-level BPE vocabulary so the file is a complete model
  <family>/reference.safetensors  ids [2, 7] (int64), logits [2, 7, vocab] of transformers in float32, and
                      greedy [1, 10]: transformers' greedy continuation (6 new tokens) of the first row's first 4 ids
Weights are drawn with std 0.15 (biases and norm weights too, around 1 for norms) so every path matters.
"""
import json
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

out = Path(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/families")
VOCAB = 96
common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, hidden_act="silu")
families = {
    "llama_bias": (LlamaForCausalLM, LlamaConfig(**common, attention_bias=True, mlp_bias=True, rope_theta=10000.0,
                                                 tie_word_embeddings=False), "llama"),
    "mistral": (MistralForCausalLM, MistralConfig(**common, sliding_window=None, rope_theta=10000.0,
                                                  tie_word_embeddings=False), "llama"),
    "qwen2": (Qwen2ForCausalLM, Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=True,
                                            use_sliding_window=False), "qwen2"),
    "qwen3": (Qwen3ForCausalLM, Qwen3Config(**common, head_dim=16, rope_theta=1000000.0, tie_word_embeddings=False,
                                            attention_bias=False, use_sliding_window=False), "qwen3"),
}
ids = torch.tensor([[1, 17, 42, 5, 88, 63, 30], [9, 2, 77, 54, 13, 91, 40]])

# Byte-level BPE vocabulary for the GGUF: control tokens, printable ASCII, one merge, fillers up to VOCAB.
tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [chr(c) for c in range(0x21, 0x7F)]
tokens = tokens[:VOCAB - 2] + ["Ġ", "ab"]
assert len(tokens) == VOCAB and len(set(tokens)) == VOCAB
token_types = [3, 3, 3] + [1] * (VOCAB - 3)


def permute(w, n_head):
    """convert_hf_to_gguf's q/k row permutation (rotate_half order → interleaved pairs), weights or biases."""
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
              "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}


def gguf_name(name):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if name in fixed:
        return fixed[name]
    parts = name.split(".")  # model.layers.N.<module...>.(weight|bias)
    return f"blk.{parts[2]}.{GGUF_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


for index, (family, (cls, config, arch)) in enumerate(families.items()):
    torch.manual_seed(100 + index)
    model = cls(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.15 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    d = out / family
    (d / "hf").mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d / "hf", safe_serialization=True)
    for extra in ["generation_config.json"]:
        (d / "hf" / extra).unlink(missing_ok=True)
    with torch.no_grad():
        logits = model(ids).logits.float()
        greedy = model.generate(ids[:1, :4], max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0)
    save_file({"ids": ids.to(torch.int64).contiguous(), "logits": logits.contiguous(),
               "greedy": greedy.to(torch.int64).contiguous()}, str(d / "reference.safetensors"))

    c = config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    w = gguf.GGUFWriter(str(d / "model.gguf"), arch=arch)
    w.add_name(f"tiny {family}")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(float(c.rope_theta if hasattr(c, "rope_theta") else c.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(VOCAB)
    if head_dim * c.num_attention_heads != c.hidden_size:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    w.add_token_merges(["a b"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        t = tensor.float().numpy()
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
            t = permute(t, c.num_attention_heads if ".q_proj." in name else c.num_key_value_heads)
        w.add_tensor(gguf_name(name), np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(family, arch, "params", sum(p.numel() for p in model.parameters()), "greedy", greedy.tolist())
