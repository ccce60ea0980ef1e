"""Golden trace of PEFT's AdaLoRA rank allocation on the tiny fixture Llama (issue 5, fidelity).

Writes Tests/Fixtures/peft/llama_adalora_trace/:
  trace.safetensors  init.<module>.lora_{A,E,B}  initial adapter (after seeded lora_B noise, so LoRAKit starts equal)
                     batches [steps, 2, 8] int64  the input_ids of every step (labels = input_ids)
                     scores.<step>.<module> [init_r]  triplet scores after the step's importance update (steps < T - tfinal)
                     E.<step>.<module> [init_r]      lora_E after update_and_allocate
                     final.<module>.lora_{A,E,B}      adapter after the last step
  trace.json         config, and per step: loss (incl. orthogonal regulariser), budget, rank_pattern after the step

Run from the repository root:  python scripts/reference/make_adalora_trace.py
(torch 2.15.0, transformers 5.23.0, peft 0.21.2, safetensors; CPU, float32)
"""
import json
import os

import torch
from peft import AdaLoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
BASE = os.path.join(ROOT, "Tests", "Fixtures", "peft", "base_llama")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "peft", "llama_adalora_trace")
CONFIG = dict(init_r=6, target_r=2, lora_alpha=8, tinit=2, tfinal=3, deltaT=2, total_step=12,
              beta1=0.85, beta2=0.85, orth_reg_weight=0.5, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
              # With task_type None, PeftModel.forward calls the transformers model directly and AdaLoraModel.forward,
              # which adds the orthogonal regulariser, never runs: the loss would silently lack it.
              task_type="CAUSAL_LM")


def module_of(name):
    # "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default" -> "model.layers.0.self_attn.q_proj"
    if name.startswith("base_model.model."):
        name = name[len("base_model.model."):]
    return name.rsplit(".", 2)[0]


def main():
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(BASE, torch_dtype=torch.float32, attn_implementation="eager")
    model = get_peft_model(base, AdaLoraConfig(**CONFIG))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_B" in name:
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    tensors = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            tensors[f"init.{module_of(name)}.{name.rsplit('.', 2)[1]}"] = p.detach().clone()
    steps = CONFIG["total_step"]
    batches = torch.randint(3, 256, (steps, 2, 8), generator=torch.Generator().manual_seed(2))
    tensors["batches"] = batches
    allocator = model.base_model.rankallocator
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    log = []
    model.train()
    final_step = CONFIG["total_step"] - CONFIG["tfinal"]
    for step in range(steps):
        loss = model(input_ids=batches[step], labels=batches[step]).loss
        loss.backward()
        optimizer.step()
        model.base_model.update_and_allocate(step)
        if step < final_step:
            # The allocator keys its state by names relative to the transformers model (no base_model.model.).
            for name, _ in model.base_model.model.named_parameters():
                if "lora_E.default" in name:
                    prefix = name.replace("lora_E", "%s")
                    score_e = allocator._element_score(name).view(-1)
                    score_a = allocator._element_score(prefix % "lora_A").mean(dim=1)
                    score_b = allocator._element_score(prefix % "lora_B").mean(dim=0)
                    tensors[f"scores.{step}.{module_of(name)}"] = score_e + (score_a + score_b)
        for name, p in model.named_parameters():
            if "lora_E.default" in name:
                tensors[f"E.{step}.{module_of(name)}"] = p.detach().view(-1).clone()
        optimizer.zero_grad()
        pattern = model.peft_config["default"].rank_pattern
        log.append({"step": step, "loss": loss.item(), "budget": allocator.budget_schedule(step)[0],
                    "rank_pattern": None if pattern is None else
                    {module_of(k): [bool(b) for b in v] for k, v in pattern.items()}})
    for name, p in model.named_parameters():
        if "lora_" in name:
            tensors[f"final.{module_of(name)}.{name.rsplit('.', 2)[1]}"] = p.detach().clone()
    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "trace.safetensors"))
    with open(os.path.join(OUT, "trace.json"), "w") as f:
        json.dump({"config": CONFIG, "optimizer": {"name": "AdamW", "lr": 1e-2, "weight_decay": 0.01},
                   "versions": {"torch": torch.__version__}, "steps": log}, f, indent=1)


if __name__ == "__main__":
    main()
