#!/usr/bin/env python3
"""PyTorch + PEFT's side of `lorakit bench train`, for a ratio measured on the same machine in one session.

The same step as LoRAKit's benchmark: SmolLM2-135M-Instruct with float32 weights (transformers dequantizes the
GGUF), LoRA r = 8, alpha 16, dropout 0.05 on the given targets, a batch of 4 × 256 random tokens learnt at every
position, AdamW; one untimed warm-up step, then the median of the timed steps. Prints one JSON line.

  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch peft transformers gguf
  /tmp/torchenv/bin/python scripts/reference/bench_pytorch_train.py \
      [models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf] [q_proj,v_proj] [steps]
"""
import json
import os
import resource
import statistics
import sys
import time

import peft
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
targets = (sys.argv[2] if len(sys.argv) > 2 else "q_proj,v_proj").split(",")
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3

torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), torch_dtype=torch.float32)
rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=targets))
model.train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0)
ids = torch.randint(256, model.config.vocab_size, (4, 256))

times, losses = [], []
for step in range(1 + steps):
    start = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    times.append(time.perf_counter() - start)
    losses.append(loss.item())
step_seconds = statistics.median(times[1:])
print(json.dumps({
    "benchmark": "train", "framework": "pytorch+peft", "torch": torch.__version__, "peft": peft.__version__,
    "threads": torch.get_num_threads(), "targets": ",".join(targets), "tokens_per_step": ids.numel(),
    "step_seconds": round(step_seconds, 3), "tokens_per_second": round(ids.numel() / step_seconds, 1),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rss_after_load_bytes": rss_after_load,
    "loss_first": losses[0], "loss_last": losses[-1],
}))
