#!/usr/bin/env bash
# Prepares .gpu/bundle.tar.gz, everything scripts/gpu-check.sh needs on a GPU machine that builds nothing:
#   lorakit   release binary built HERE with the Swift runtime linked in (--static-swift-stdlib), so the GPU
#             machine needs no Swift toolchain;
#   kernels/  every kernel program precompiled by NVRTC for sm_90 and sm_80 (lorakit cuda compile): the GPU
#             machine needs no NVRTC (its 100 MB library is too large to carry) — it loads these cubins;
#   lib/      OpenBLAS and its Fortran runtime, for the CPU side of the parity checks.
# Compressed to stay under the 64 MiB a device run may carry. Run: scripts/gpu-bundle.sh (then carry ".gpu").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
swift build -c release --static-swift-stdlib --scratch-path "$root/.build-static" --product lorakit
bin="$(swift build -c release --static-swift-stdlib --scratch-path "$root/.build-static" --show-bin-path)/lorakit"
stage="$root/.gpu/stage"
rm -rf "$stage" && mkdir -p "$stage/lib" "$stage/kernels"
cp "$bin" "$stage/lorakit"
strip "$stage/lorakit" 2>/dev/null || true
"$stage/lorakit" cuda compile --arch 90 80 --cache-dir "$stage/kernels" >/dev/null
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
    [ -n "$path" ] && cp -L "$path" "$stage/lib/$lib"
done
tar -C "$stage" -czf "$root/.gpu/bundle.tar.gz" .
rm -rf "$stage"
echo "$(du -h "$root/.gpu/bundle.tar.gz" | cut -f1) $root/.gpu/bundle.tar.gz (carry: .gpu)"
