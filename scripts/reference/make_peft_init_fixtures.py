"""Reference outputs for LoRA initialisation schemes that change the base: PEFT's OLoRA (init_lora_weights="olora").

How they were made: with a reference venv (torch 2.15.0 CPU float32, transformers, peft 0.21.2, safetensors; e.g.
`python3 -m venv /work/torchenv && /work/torchenv/bin/pip install torch==2.15.0 transformers peft==0.21.2 safetensors`),
from the repository root:

    /work/torchenv/bin/python scripts/reference/make_peft_init_fixtures.py

It reads the committed tiny Llama base (Tests/Fixtures/peft/base_llama), applies LoraConfig(r=4, lora_alpha=8,
target_modules=["q_proj", "v_proj"], init_lora_weights="olora") and writes Tests/Fixtures/peft/llama_olora/io.safetensors:
  init.<module>.lora_A / .lora_B   the factors PEFT initialised (A = first r rows of R, B = first r columns of Q of
                                   the QR of W), <module> = model.layers.N.self_attn.{q,v}_proj
  residual.<module>.weight         the base weight PEFT left in place: W − s·B·A (s = alpha / r = 2)
  input [2, 8], logits.base [2, 8, 256], logits.olora [2, 8, 256]  (equal up to rounding: OLoRA keeps the output)
"""
import os
import torch
from safetensors.torch import save_file
from transformers import LlamaForCausalLM
from peft import LoraConfig, get_peft_model

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "peft")
OUT = os.path.join(ROOT, "llama_olora")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)

base = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "base_llama"), torch_dtype=torch.float32).eval()
ids = torch.randint(0, base.config.vocab_size, (2, 8))
with torch.no_grad():
    base_logits = base(input_ids=ids).logits.clone()
model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights="olora")).eval()
tensors = {"input": ids.to(torch.int64), "logits.base": base_logits}
with torch.no_grad():
    tensors["logits.olora"] = model(input_ids=ids).logits.clone()
for name, module in model.base_model.model.named_modules():
    if hasattr(module, "lora_A") and "default" in module.lora_A:
        tensors[f"init.{name}.lora_A"] = module.lora_A["default"].weight.detach().clone()
        tensors[f"init.{name}.lora_B"] = module.lora_B["default"].weight.detach().clone()
        tensors[f"residual.{name}.weight"] = module.base_layer.weight.detach().clone()
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "io.safetensors"))
print(f"wrote {len(tensors)} tensors to {OUT}/io.safetensors")
