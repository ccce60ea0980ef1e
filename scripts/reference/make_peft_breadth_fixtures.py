"""Reference outputs for issue 14 (DoRA training step, LoRA+, weighted adapter combination, mixed-adapter batches).

How they were made: run with the project's reference venv (torch 2.15.0 CPU float32, transformers 5.25, peft 0.21.2,
safetensors), from the repository root:

    /work/torchenv/bin/python scripts/reference/make_peft_breadth_fixtures.py

It reads the committed tiny Llama base (Tests/Fixtures/peft/base_llama) and PEFT DoRA adapter
(Tests/Fixtures/peft/llama_dora/adapter) and writes Tests/Fixtures/peft/breadth/:
  dora_train.safetensors   one training step of the DoRA adapter (labels = input_ids): `input`, `loss`,
                           `grad.<saved key>` of every lora_A / lora_B / lora_magnitude_vector, and
                           `loraplus.<saved key>` = the values after one AdamW step of PEFT's create_loraplus_optimizer
                           (lr 1e-3, loraplus_lr_ratio 16, loraplus_weight_decay 0.01).
  sources/{a,b,c}/         three random LoRA adapters (init_lora_weights=False, seeds 1, 2, 3) saved by PEFT:
                           a r=4 α=8, b r=4 α=16, c r=2 α=2, all on q_proj + v_proj.
  combos.safetensors       for each combination `<name>`: `<name>.<module>.lora_A` / `.lora_B` as PEFT's
                           add_weighted_adapter built them and `<name>.logits` [3, 8, 256]; `<src>.logits` for each
                           source; `mixed.logits` for adapter_names = ["a", "b", "__base__"]; `input` [3, 8].
  combos.json              the combinations (adapters, weights, method, rank, density).
"""
import json, os, shutil, tempfile
import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from peft.optimizers import create_loraplus_optimizer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "peft")
OUT = os.path.join(ROOT, "breadth")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)


def base():
    return LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "base_llama"), torch_dtype=torch.float32)


def saved_key(name):
    # PEFT in-memory name -> saved key (adapter name stripped, magnitude without .weight)
    name = name.replace(".default.weight", ".weight").replace(".default", "")
    return name.replace("lora_magnitude_vector.weight", "lora_magnitude_vector")


# 1. DoRA training step and LoRA+ step
ids = load_file(os.path.join(ROOT, "llama_dora", "io.safetensors"))["input"]
model = PeftModel.from_pretrained(base(), os.path.join(ROOT, "llama_dora", "adapter"), is_trainable=True)
model.train()
loss = model(input_ids=ids, labels=ids).loss
loss.backward()
out = {"input": ids.to(torch.int64), "loss": loss.detach().reshape(1)}
params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
for n, p in params:
    out["grad." + saved_key(n)] = p.grad.detach().clone()
opt = create_loraplus_optimizer(model, torch.optim.AdamW, lr=1e-3, loraplus_lr_ratio=16, loraplus_weight_decay=0.01)
opt.step()
for n, p in params:
    out["loraplus." + saved_key(n)] = p.detach().clone()
save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "dora_train.safetensors"))

# 2. Weighted combinations of three random LoRA adapters
model = None
sources = {"a": (4, 8, 1), "b": (4, 16, 2), "c": (2, 2, 3)}
for name, (r, alpha, seed) in sources.items():
    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    if model is None:
        model = get_peft_model(base(), cfg, adapter_name=name)
    else:
        model.add_adapter(name, cfg)
    with torch.no_grad():  # init_lora_weights=False gives B ~ U(±1/√r); make the deltas visible in the logits
        for n, p in model.named_parameters():
            if f"lora_B.{name}." in n:
                p.mul_(0.5)
model.eval()
for name in sources:
    d = os.path.join(OUT, "sources", name)
    shutil.rmtree(d, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, selected_adapters=[name])
        src = os.path.join(tmp, name) if os.path.isdir(os.path.join(tmp, name)) else tmp
        shutil.copytree(src, d)
    readme = os.path.join(d, "README.md")
    if os.path.exists(readme):
        os.remove(readme)

g = torch.Generator().manual_seed(5)
x = torch.randint(0, 256, (3, 8), generator=g)
res = {"input": x.to(torch.int64)}
with torch.no_grad():
    for name in sources:
        model.set_adapter(name)
        res[f"{name}.logits"] = model(input_ids=x).logits
    res["mixed.logits"] = model(input_ids=x, adapter_names=["a", "b", "__base__"]).logits

combos = {
    "cat": dict(adapters=["a", "b"], weights=[0.7, 0.3], combination_type="cat"),
    "linear": dict(adapters=["a", "b"], weights=[0.7, 0.3], combination_type="linear"),
    "svd": dict(adapters=["a", "b"], weights=[0.7, 0.3], combination_type="svd", svd_rank=6),
    "svd_ac": dict(adapters=["a", "c"], weights=[1.0, -0.5], combination_type="svd", svd_rank=3),
    "cat_ac": dict(adapters=["a", "c"], weights=[1.0, -0.5], combination_type="cat"),
    "ties": dict(adapters=["a", "b"], weights=[0.7, 0.3], combination_type="ties", density=0.5),
    "magnitude_prune": dict(adapters=["a", "b"], weights=[0.7, 0.3], combination_type="magnitude_prune", density=0.5),
}
for cname, kw in combos.items():
    model.add_weighted_adapter(adapter_name=cname, **kw)
    model.set_adapter(cname)
    with torch.no_grad():
        res[f"{cname}.logits"] = model(input_ids=x).logits
    sd = get_peft_model_state_dict(model, adapter_name=cname)
    for k, v in sd.items():
        k = k.replace("base_model.model.", "").replace(".weight", "")
        res[f"{cname}.{k}"] = v.detach().clone()
    assert model.peft_config[cname].r == model.peft_config[cname].lora_alpha
save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "combos.safetensors"))
with open(os.path.join(OUT, "combos.json"), "w") as f:
    json.dump({k: {**v, "rank": model.peft_config[k].r} for k, v in combos.items()}, f, indent=1, sort_keys=True)
print("ok", loss.item())
