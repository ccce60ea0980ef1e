#!/usr/bin/env python3
"""Check that LoRAKit's BERT adapters load in Hugging Face PEFT and give LoRAKit's outputs.

  classification: BertForSequenceClassification.from_pretrained(MODEL, num_labels=K) +
                  PeftModel.from_pretrained(ADAPTER) (LoRA + the classifier from modules_to_save); logits of the
                  first N examples of DATA vs `lorakit eval --json` (which prints its logits)
  retrieval:      BertModel + PeftModel.from_pretrained(ADAPTER); mean-pooled, L2-normalised embeddings of the
                  first N anchors vs `lorakit embed --adapter`

usage: peft_load_bert.py {classification|retrieval} MODEL_DIR ADAPTER_DIR DATA.jsonl [N]
Prints a JSON report (max |difference|, agreement of predictions) and exits 1 when the difference exceeds 1e-4.
"""
import json
import os
import subprocess
import sys

import torch
from peft import PeftModel
from transformers import AutoTokenizer, BertForSequenceClassification, BertModel

task, model_dir, adapter_dir, data_path = sys.argv[1:5]
n = int(sys.argv[5]) if len(sys.argv) > 5 else 64
lorakit = os.environ.get("LORAKIT", os.path.join(os.path.dirname(__file__), "../../.build/release/lorakit"))
rows = [json.loads(line) for line in open(data_path, encoding="utf-8") if line.strip()][:n]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
torch.manual_seed(0)

if task == "classification":
    labels = json.load(open(os.path.join(adapter_dir, "labels.json")))["labels"]
    base = BertForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    texts = [r["text"] for r in rows]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        peft_logits = model(**enc).logits
    out = subprocess.run([lorakit, "eval", "--model", model_dir, "--adapter", adapter_dir, "--data", data_path,
                          "--limit", str(n), "--json"], check=True, capture_output=True, text=True).stdout
    ours = torch.tensor(json.loads(out)["logits"])
    diff = (peft_logits - ours).abs().max().item()
    agree = (peft_logits.argmax(-1) == ours.argmax(-1)).float().mean().item()
    gold = torch.tensor([labels.index(r["label"]) if isinstance(r["label"], str) else r["label"] for r in rows])
    report = {"task": task, "examples": len(rows), "max_abs_logit_difference": diff, "prediction_agreement": agree,
              "peft_accuracy": (peft_logits.argmax(-1) == gold).float().mean().item(),
              "lorakit_accuracy": (ours.argmax(-1) == gold).float().mean().item()}
else:
    base = BertModel.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    texts = [r["anchor"] for r in rows]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
        with model.disable_adapter():
            base_hidden = model(**enc).last_hidden_state
    def pool(h):
        m = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
    peft_emb, base_emb = pool(hidden), pool(base_hidden)
    args = [lorakit, "embed", "--model", model_dir, "--adapter", adapter_dir]
    for t in texts:
        args += ["--text", t]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    ours = torch.tensor([e["embedding"] for e in json.loads(out)["embeddings"]])
    diff = (peft_emb - ours).abs().max().item()
    report = {"task": task, "examples": len(rows), "max_abs_embedding_difference": diff,
              "adapter_effect_max_abs": (peft_emb - base_emb).abs().max().item()}
report = {k: v for k, v in report.items() if v is not None}
print(json.dumps(report, indent=1))
sys.exit(0 if diff <= 1e-4 else 1)
