#!/usr/bin/env bash
# The main job, from a fresh machine: set up, build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product lorakit >/dev/null
.build/release/lorakit demo finetune "$@"
