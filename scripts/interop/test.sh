#!/usr/bin/env bash
# Interoperability with llama.cpp itself (built by scripts/interop/build-llama-cpp.sh), separate from the fast suite:
#   1. a LoRA trained by LoRAKit on SmolLM2, exported to GGUF: llama.cpp's greedy 20 tokens with --lora equal
#      `lorakit generate --adapter` on the same F32 (dequantized) base, for three test prompts (both sides with
#      --ignore-eos: end-of-generation tokens are never chosen, so 20 tokens run past the date); on a difference it
#      reports the first divergent token and LoRAKit's logit margin there;
#   2. the adapter merged by LoRAKit (`merge --to gguf --type f32`) equals llama.cpp's own merge (llama-export-lora)
#      tensor by tensor, and llama.cpp's greedy output of the merged file equals LoRAKit's; q8_0/q4_1/q4_0 merges
#      are loaded and compared too (agreement reported);
#   3. gguf-py (llama.cpp's reader) reads back what LoRAKit wrote; PEFT → GGUF → PEFT of a PEFT fixture is lossless.
#   4. the other GGUF families (tiny random-weight fixtures of llama with biases, mistral, qwen2, qwen3): llama.cpp
#      loads each, and its greedy tokens equal LoRAKit's for the base, for a LoRA trained by LoRAKit and exported to
#      GGUF (--lora), and for that LoRA merged into the base (`merge --to gguf`).
# Usage: scripts/interop/test.sh   (env: LORAKIT_MODELS, INTEROP_DIR work folder, LORAKIT_THREADS)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export LORAKIT_MODELS="${LORAKIT_MODELS:-$root/models}"
work="${INTEROP_DIR:-$(mktemp -d /tmp/lorakit-interop.XXXXXX)}"
mkdir -p "$work"
threads="${LORAKIT_THREADS:-$(nproc)}"
failures=0; passes=0
pass() { echo "PASS: $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

scripts/setup.sh
bin=$(scripts/interop/build-llama-cpp.sh | tail -1)
cache=$(dirname "$(dirname "$bin")")
# gguf-py and safetensors for reading files back, in a venv beside the llama.cpp build (PyPI).
venv="$cache/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import gguf, safetensors, numpy' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check gguf==0.19.0 safetensors numpy
fi
py="$venv/bin/python"
swift build -c release --product lorakit >/dev/null
lorakit="$root/.build/release/lorakit"
smol=$(ls "$LORAKIT_MODELS"/smollm2/*.gguf | head -1)

echo "== work folder $work, llama.cpp $bin, threads $threads"
# F32 base: the Q4_1 blocks dequantized exactly (both sides then compute on the same floats).
"$lorakit" merge --model "$smol" --to gguf --type f32 --out "$work/base-f32.gguf" --overwrite >/dev/null
"$lorakit" demo dates --out "$work/data" --format completion --train 256 --valid 16 --test 16 >/dev/null
"$lorakit" train --model "$smol" --data "$work/data" --out "$work/run" --rank 8 --alpha 16 --targets all-linear \
    --iters 20 --batch-size 4 --max-length 64 --learning-rate 1e-3 --eval-every 0 --save-every 0 --overwrite >"$work/train.log" 2>&1
"$lorakit" export --adapter "$work/run" --to gguf --model "$work/base-f32.gguf" --out "$work/adapter.gguf" --overwrite
prompts=3  # the first test prompts, one file each (prompt-1.txt …)
"$py" - "$work/data/test.jsonl" "$work" "$prompts" <<'PY'
import json, sys
lines = open(sys.argv[1]).readlines()[:int(sys.argv[3])]
for i, line in enumerate(lines, 1):
    open(f"{sys.argv[2]}/prompt-{i}.txt", "w").write(json.loads(line)["prompt"])
PY

compare() {  # compare LABEL MODEL [ADAPTER]: llama.cpp greedy vs LoRAKit greedy (20 tokens) on every prompt
    local label=$1 model=$2 adapter=${3:-} ok=0
    for i in $(seq 1 $prompts); do compare_one "$label-$i" "$model" "$adapter" "$(cat "$work/prompt-$i.txt")" || ok=1; done
    return $ok
}

compare_one() {  # compare_one LABEL MODEL ADAPTER PROMPT [THREADS]; prints the report
    local label=$1 model=$2 adapter=$3 prompt=$4 t=${5:-$threads}
    local lora=() ours=()
    [ -n "$adapter" ] && lora=(--lora "$adapter") && ours=(--adapter "$adapter")
    "$lorakit" generate --model "$model" "${ours[@]}" --prompt "$prompt" --temperature 0 --max-tokens 20 --ignore-eos \
        --trace "$work/$label.trace.json" >/dev/null
    # llama-completion (11434) prints its tokens through its asynchronous log, and on these tiny models it sometimes
    # exits (status 0) before the log is written out: the text ends early or is empty, and so does its stderr log
    # (seen in 9 runs of 10 with -t 2; with -t 1 in about 1 run of 4, up to 4 runs in a row; never with SmolLM2, 0 in
    # 40). A text that is a strict prefix of LoRAKit's is such a lost tail: the run is repeated, up to 30 times, and
    # said. A text that differs is a failure at once.
    local attempt status
    for attempt in $(seq 1 30); do
        "$bin/llama-completion" -m "$model" "${lora[@]}" -p "$prompt" -n 20 --ignore-eos --special --temp 0 --seed 0 -no-cnv \
            --no-display-prompt -t "$t" -c 256 -b 256 2>"$work/$label.llama.log" >"$work/$label.llama.txt" || {
            tail -5 "$work/$label.llama.log"; echo "$label: llama.cpp did not run"; return 1; }
        status=0
        "$py" - "$work/$label.llama.txt" "$work/$label.trace.json" "$label" <<'PY' || status=$?
import json, sys
llama = open(sys.argv[1], encoding="utf-8", errors="replace").read()
trace = json.load(open(sys.argv[2]))
ours = "".join(s["piece"] for s in trace["steps"])
if llama.startswith(ours) and llama[len(ours):] in ("", "\n", "\n\n"):   # llama-completion ends its output with newlines
    print(f"{sys.argv[3]}: 20/20 tokens agree, min margin {min(s['margin'] for s in trace['steps']):.3f}: {ours!r}")
    sys.exit(0)
if len(llama) < len(ours) and ours.startswith(llama):
    print(f"{sys.argv[3]}: llama.cpp's text stops early ({len(llama)} of {len(ours)} characters, exit status 0): {llama!r}")
    sys.exit(2)
pos = next((i for i, (a, b) in enumerate(zip(llama, ours)) if a != b), min(len(llama), len(ours)))
done = 0
for k, s in enumerate(trace["steps"]):
    if done + len(s["piece"]) > pos:
        break
    done += len(s["piece"])
print(f"{sys.argv[3]}: first divergence at token {k} ({k}/20 agree): LoRAKit {s['piece']!r} (id {s['id']}, margin "
      f"{s['margin']:.4f} over id {s['runner_up']}), llama.cpp continues {llama[done:done + 12]!r}")
print(f"  LoRAKit:   {ours!r}\n  llama.cpp: {llama!r}")
sys.exit(1)
PY
        [ "$status" = 2 ] || return "$status"
        echo "  (attempt $attempt of 30: run again)"
    done
    return 1
}

echo "== 1. GGUF LoRA adapter on the F32 base: llama.cpp --lora vs lorakit generate --adapter"
if compare adapter "$work/base-f32.gguf" "$work/adapter.gguf"; then pass "adapter greedy tokens"; else fail "adapter greedy tokens"; fi

echo "== 2. merged GGUF"
"$lorakit" merge --model "$smol" --adapter "$work/run" --to gguf --type f32 --out "$work/merged-f32.gguf" --overwrite >/dev/null
"$bin/llama-export-lora" -m "$work/base-f32.gguf" --lora "$work/adapter.gguf" -o "$work/llama-merged.gguf" -t "$threads" >"$work/export-lora.log" 2>&1
if "$py" - "$work/merged-f32.gguf" "$work/llama-merged.gguf" <<'PY'
import sys, numpy as np, gguf
ours, theirs = (gguf.GGUFReader(p) for p in sys.argv[1:3])
t = {x.name: x for x in theirs.tensors}
worst, name = 0.0, None
for x in ours.tensors:
    a, b = np.asarray(x.data, dtype=np.float32), np.asarray(t[x.name].data, dtype=np.float32)
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    if d > worst: worst, name = d, x.name
print(f"LoRAKit merge vs llama-export-lora: {len(ours.tensors)} tensors, max |diff| {worst:.3g} ({name})")
sys.exit(0 if worst < 1e-4 else 1)
PY
then pass "merge equals llama-export-lora"; else fail "merge differs from llama-export-lora"; fi
if compare merged-f32 "$work/merged-f32.gguf"; then pass "merged f32 greedy tokens"; else fail "merged f32 greedy tokens"; fi
for t in q8_0 q4_1 q4_0; do
    "$lorakit" merge --model "$smol" --adapter "$work/run" --to gguf --type $t --out "$work/merged-$t.gguf" --overwrite >/dev/null
    compare "merged-$t" "$work/merged-$t.gguf" || echo "  (quantized: both run the same blocks with different kernels; reported, not required)"
done

echo "== 3. read-back by gguf-py; PEFT → GGUF → PEFT"
fixture="$root/Tests/Fixtures/peft"
"$lorakit" export --adapter "$fixture/llama_lora/adapter" --to gguf --model "$fixture/base_llama" --out "$work/fixture.gguf" --overwrite >/dev/null
"$lorakit" export --adapter "$work/fixture.gguf" --to peft --model "$fixture/base_llama" --out "$work/fixture-back" --overwrite >/dev/null
if "$py" - "$work/adapter.gguf" "$work/fixture.gguf" "$fixture/llama_lora/adapter" "$work/fixture-back" <<'PY'
import sys, filecmp, numpy as np, gguf
from safetensors.numpy import load_file
for path in sys.argv[1:3]:
    r = gguf.GGUFReader(path)
    f = {k: v for k, v in r.fields.items()}
    def s(k): return bytes(f[k].parts[f[k].data[0]]).decode()
    assert s("general.type") == "adapter" and s("adapter.type") == "lora", path
    assert f["adapter.lora.alpha"].types[0] == gguf.GGUFValueType.FLOAT32, path
    for t in r.tensors:
        assert t.name.endswith((".lora_a", ".lora_b")), t.name
        if t.name.endswith(".lora_a"):
            b = next(x for x in r.tensors if x.name == t.name[:-1] + "b")
            assert t.shape[1] == b.shape[0], (t.name, t.shape, b.shape)   # a ne1 = b ne0 = r
    print(f"gguf-py reads {path}: {len(r.tensors)} tensors, arch {s('general.architecture')}, alpha {float(f['adapter.lora.alpha'].parts[-1][0])}")
src, back = sys.argv[3], sys.argv[4]
a, b = load_file(src + "/adapter_model.safetensors"), load_file(back + "/adapter_model.safetensors")
assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), "tensors differ"
assert filecmp.cmp(src + "/adapter_config.json", back + "/adapter_config.json", shallow=False), "config differs"
print(f"PEFT -> GGUF -> PEFT: {len(a)} tensors bit-identical, adapter_config.json identical")
PY
then pass "gguf-py read-back and lossless PEFT round trip"; else fail "read-back / round trip"; fi

echo "== 4. other architectures: llama with biases, mistral, qwen2, qwen3"
"$py" - "$work/families-data" <<'PY'
import json, os, random, sys
r = random.Random(3)
chars = [chr(c) for c in range(0x21, 0x7b)]  # inside the fixtures' tiny vocabulary
os.makedirs(sys.argv[1], exist_ok=True)
for name, n in (("train.jsonl", 64), ("valid.jsonl", 8)):
    with open(os.path.join(sys.argv[1], name), "w") as f:
        f.writelines(json.dumps({"text": "hello(" + "".join(r.choice(chars) for _ in range(12)) + ")"}) + "\n" for _ in range(n))
PY
for fam in llama_bias mistral qwen2 qwen3; do
    dir="$root/Tests/Fixtures/families/$fam" ok=0
    "$lorakit" train --model "$dir/model.gguf" --data "$work/families-data" --out "$work/$fam-run" --rank 4 --alpha 8 \
        --targets all-linear --iters 10 --batch-size 4 --max-length 32 --learning-rate 5e-2 --eval-every 0 --save-every 0 \
        --overwrite >"$work/$fam-train.log" 2>&1
    "$lorakit" export --adapter "$work/$fam-run" --to gguf --model "$dir/model.gguf" --out "$work/$fam-adapter.gguf" --overwrite >/dev/null
    "$lorakit" merge --model "$dir/model.gguf" --adapter "$work/$fam-run" --to gguf --type f32 --out "$work/$fam-merged.gguf" --overwrite >/dev/null
    # One llama.cpp thread: with two, llama-completion (11434) on these 32-wide models mostly loses its output.
    compare_one "$fam-base" "$dir/model.gguf" "" "hello(world)" 1 || ok=1
    compare_one "$fam-adapter" "$dir/model.gguf" "$work/$fam-adapter.gguf" "hello(world)" 1 || ok=1
    compare_one "$fam-merged" "$work/$fam-merged.gguf" "" "hello(world)" 1 || ok=1
    if [ $ok = 0 ]; then pass "$fam: base, GGUF adapter and merged GGUF agree with llama.cpp"; else fail "$fam greedy tokens"; fi
done

echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
