#!/usr/bin/env bash
# The one script a session with a GPU runs; it builds nothing there. Prepare on the build machine with
# scripts/gpu-bundle.sh (static release binary, precompiled kernels, OpenBLAS) and carry ".gpu"; on the GPU:
#   scripts/gpu-check.sh            # prints one JSON summary on stdout; per-step outputs under $OUT (or .gpu/out)
# Steps, each with its own time limit (700 s in all at worst) so the whole run fits ~12 minutes of device time:
#   1. lorakit cuda info      driver, device, NVRTC/cuBLAS found (which GEMM path is used)
#   2. kernel compile         for the device's own arch with NVRTC when present, into the cache the later steps use
#                             (without NVRTC this step fails fast and the carried sm_90/sm_80 cubins are used)
#   3. lorakit cuda selftest  every CUDA kernel vs the CPU kernels on random data (fp32 and bf16 tolerances)
#   4. lorakit cuda parity    model-level CUDA vs CPU: loss fp32/bf16, training loss with dropout, adapter-gradient
#                             cosine, 20 greedy tokens in fp32 (SmolLM2 when $LORAKIT_MODELS has it, else a random-init
#                             model of its shape: the 94 MB checkpoint is too large to carry)
#   5. lorakit bench train --device cuda at 4×256 and 16×512, LoRA q,v and all-linear, SmolLM2-135M and a
#      random-init TinyLlama-1.1B shape
# A step that fails or is not available is recorded with its exit status and the tail of its error output.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="${OUT:-$root/.gpu/out}"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -f "$root/.gpu/bundle.tar.gz" ]; then
    tar -xzf "$root/.gpu/bundle.tar.gz" -C "$work"
    lk="$work/lorakit"
    export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    [ -f "$work/lib/libopenblas.so.0" ] && export LORAKIT_BLAS="$work/lib/libopenblas.so.0"
    export LORAKIT_CUDA_CACHE="$work/kernels"
else
    lk="${LORAKIT_BIN:-$root/.build/release/lorakit}"
    export LORAKIT_CUDA_CACHE="${LORAKIT_CUDA_CACHE:-$work/kernels}"
fi
models="${LORAKIT_MODELS:-$root/models}"
smollm="$models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

steps=()
# step NAME SECONDS COMMAND...: runs it, keeps stdout as $out/NAME.json, records the status.
step() {
    local name=$1 limit=$2; shift 2
    local start=$(date +%s.%N)
    timeout "$limit" "$@" >"$out/$name.json" 2>"$out/$name.err"
    local rc=$?
    local secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    local err=$(tail -c 600 "$out/$name.err" | tr '\n"\\\t' '   ' | tr -cd '[:print:]')
    local body=$(cat "$out/$name.json")
    [ -n "$body" ] && printf '%s' "$body" | head -c 1 | grep -q '[{[]' || body=null
    steps+=("{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $secs, \"stderr_tail\": \"$err\", \"output\": $body}")
    return $rc
}

step info 30 "$lk" cuda info
arch=$(grep -o '"compute_capability" : [0-9]*' "$out/info.json" | grep -o '[0-9]*$' | head -1)
step compile 60 "$lk" cuda compile --arch "${arch:-90}" --cache-dir "$LORAKIT_CUDA_CACHE"  # later steps hit this cache
step selftest 120 "$lk" cuda selftest
if [ -f "$smollm" ]; then model_args=(--model "$smollm"); model_name=smollm2; else model_args=(--random-shape smollm2-135m); model_name=smollm2-random; fi
step parity 120 "$lk" cuda parity "${model_args[@]}"
for shape in "4 256" "16 512"; do
    set -- $shape
    step "bench_${model_name}_${1}x${2}" 75 "$lk" bench train --device cuda "${model_args[@]}" --rows "$1" --length "$2" \
        --variants lora-qv,lora-all --steps 3 --warmup-steps 1
    step "bench_tinyllama-1.1b-random_${1}x${2}" 110 "$lk" bench train --device cuda --random-shape tinyllama-1.1b --rows "$1" --length "$2" \
        --variants lora-qv,lora-all --steps 3 --warmup-steps 1
done

{
    printf '{"script": "scripts/gpu-check.sh", "date": "%s", "steps": [' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    sep=""
    for s in "${steps[@]}"; do printf '%s%s' "$sep" "$s"; sep=", "; done
    printf ']}\n'
} | tee "$out/summary.json"
