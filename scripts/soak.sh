#!/usr/bin/env bash
# Long-run test (not part of the fast suite; docs/RELIABILITY.md): `lorakit train` for STEPS optimizer steps
# (default 2000) on a tiny Llama, with evaluation every 50 steps and checkpoints every 25 rotated to the newest 3,
# while the process's RSS is sampled from /proc. After warm-up (the first 10 % of steps) RSS must not grow: the
# least-squares slope of RSS against step is reported in MB per 1000 steps and must stay under SLOPE_LIMIT (1.0).
#   scripts/soak.sh                   (STEPS=2000 SLOPE_LIMIT=1.0 MODEL=<tiny GGUF written by soak_model.py>)
#   MODEL=$LORAKIT_MODELS/smollm2/…gguf STEPS=500 scripts/soak.sh     the same on a real model
#   LORAKIT_BIN=path/to/lorakit scripts/soak.sh                      use a built binary instead of building
# Runs niced. Writes .build/soak/{rss.tsv,summary.json} and prints the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${STEPS:-2000} limit=${SLOPE_LIMIT:-1.0}
work=.build/soak
rm -rf "$work" && mkdir -p "$work/data"
if [[ -n "${LORAKIT_BIN:-}" ]]; then lorakit=$LORAKIT_BIN; else
  swift build -c release --product lorakit 2>&1 | grep -E "error|Build complete" | tail -3
  lorakit=$(swift build -c release --show-bin-path)/lorakit
fi
model=${MODEL:-$work/tiny.gguf}
[[ -n "${MODEL:-}" ]] || python3 scripts/soak_model.py "$model"
python3 - "$work/data" <<'PY'
import json, random, sys
rng = random.Random(2000)
months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
def line():
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return json.dumps({"prompt": f"{d} {months[m - 1]} {y} ->", "completion": f" {y}-{m:02d}-{d:02d}"})
for name, n in (("train.jsonl", 400), ("valid.jsonl", 24)):
    with open(f"{sys.argv[1]}/{name}", "w") as f: f.write("\n".join(line() for _ in range(n)) + "\n")
PY

LORAKIT_THREADS=${LORAKIT_THREADS:-1} nice -n 19 "$lorakit" train --model "$model" --data "$work/data" --out "$work/run" \
  --iters "$steps" --batch-size 4 --max-length 48 --rank 4 --targets all-linear --learning-rate 1e-3 --warmup 20 \
  --eval-every 50 --save-every 25 --keep-checkpoints 3 --seed 1 > "$work/train.log" 2>&1 &
pid=$!
echo -e "seconds\tstep\trss_kb" > "$work/rss.tsv"
start=$(date +%s.%N)
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  step=$(tail -c 2000 "$work/run/metrics.jsonl" 2>/dev/null | grep -o '"split":"train","step":[0-9]*' | tail -1 | grep -o '[0-9]*$' || true)
  [[ -n "$rss" && -n "$step" ]] && echo -e "$(echo "$(date +%s.%N) - $start" | bc)\t$step\t$rss" >> "$work/rss.tsv"
  sleep 0.5
done
wait "$pid" || { echo "soak: lorakit train failed:"; tail -20 "$work/train.log"; exit 1; }

python3 - "$work" "$steps" "$limit" <<'PY'
import json, sys
work, steps, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rows = [tuple(map(float, l.split("\t"))) for l in open(f"{work}/rss.tsv").read().splitlines()[1:]]
warm = [r for r in rows if r[1] >= steps * 0.1]
xs, ys = [r[1] for r in warm], [r[2] / 1024 for r in warm]
n = len(xs); mx, my = sum(xs) / n, sum(ys) / n
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs)) * 1000
checkpoints = sorted(__import__("os").listdir(f"{work}/run/checkpoints"))
evals = sum(1 for l in open(f"{work}/run/metrics.jsonl") if '"split":"valid"' in l)
summary = {"steps": steps, "samples": len(rows), "seconds": round(rows[-1][0], 1), "rss_mb_after_warmup_min": round(min(ys), 1),
           "rss_mb_after_warmup_max": round(max(ys), 1), "rss_mb_first": round(rows[0][2] / 1024, 1),
           "slope_mb_per_1000_steps": round(slope, 3), "evaluations": evals, "checkpoints_kept": checkpoints}
json.dump(summary, open(f"{work}/summary.json", "w"), indent=1)
print(json.dumps(summary))
if slope > limit: sys.exit(f"soak: RSS grows {slope:.3f} MB per 1000 steps after warm-up (limit {limit})")
print("soak: RSS flat after warm-up")
PY
