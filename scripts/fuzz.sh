#!/usr/bin/env bash
# Coverage-guided fuzzing of one parser with libFuzzer (docs/RELIABILITY.md).
#   scripts/fuzz.sh TARGET SECONDS        fuzz for a fixed time (e.g. scripts/fuzz.sh gguf 1200)
#   scripts/fuzz.sh TARGET -runs=N        fuzz for a fixed number of executions
#   scripts/fuzz.sh build                 only build the fuzzer
#   scripts/fuzz.sh list                  the targets
# Builds `lorakit-fuzz` with sanitizer coverage, AddressSanitizer and bounds checks (-O, debug configuration: the
# release build's -Ounchecked would hide exactly the overflows we look for) into .build-fuzz, then runs it niced,
# starting from the committed seeds (Fuzz/Corpus/TARGET) and the inputs it found before (.build-fuzz/corpus/TARGET).
# Crashes land in .build-fuzz/crashes/TARGET/; minimise one and commit it to Fuzz/Regressions/TARGET/, where the
# fast test suite (ReliabilityTests) replays it. Extra arguments after the first two go to libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
targets="gguf dequantize safetensors adapter-config adapter-directory tokenizer chat-template jsonl run-config-json run-config-yaml"
target=${1:-}
[[ "$target" == list ]] && { echo "$targets"; exit 0; }
[[ -n "$target" ]] || { echo "usage: scripts/fuzz.sh TARGET SECONDS|-runs=N [libFuzzer flags] | build | list" >&2; exit 2; }

clang_lib=$(dirname "$(command -v swiftc)")/../lib/clang
fuzzer_lib=$(ls "$clang_lib"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -1)
[[ -n "$fuzzer_lib" ]] || { echo "fuzz.sh: libclang_rt.fuzzer_no_main not found under $clang_lib (a Swift toolchain for Linux has it)" >&2; exit 1; }
nice -n 19 swift build --scratch-path .build-fuzz --product lorakit-fuzz \
  -Xswiftc -O -Xswiftc -DLORAKIT_LIBFUZZER -Xswiftc -sanitize=address \
  -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
  -Xlinker "$fuzzer_lib" -Xlinker -lstdc++ 2>&1 | grep -v -e "warning: Cannot export" -e "^\[" || true
binary=.build-fuzz/debug/lorakit-fuzz
[[ -x "$binary" ]] || { echo "fuzz.sh: build failed" >&2; exit 1; }
[[ "$target" == build ]] && exit 0
[[ " $targets " == *" $target "* ]] || { echo "fuzz.sh: unknown target '$target' (known: $targets)" >&2; exit 2; }

limit=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
if [[ "$limit" == -runs=* ]]; then limits=("$limit"); else limits=(-max_total_time="$limit"); fi
corpus=.build-fuzz/corpus/$target crashes=.build-fuzz/crashes/$target
mkdir -p "$corpus" "$crashes"
# Swift's crash backtracer would wait on every finding; libFuzzer and ASan report crashes themselves.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1:malloc_limit_mb=2048}
exec nice -n 19 "$binary" "$target" "${limits[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" "$@" "$corpus" "Fuzz/Corpus/$target"
