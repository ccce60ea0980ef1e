#!/usr/bin/env bash
# The test suite, as the README and CI run it: set up, then every test in release mode
# (numeric code is orders of magnitude slower in debug builds).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export LORAKIT_MODELS="${LORAKIT_MODELS:-$PWD/models}"
swift test -c release --disable-swift-testing "$@"
