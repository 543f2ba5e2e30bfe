#!/usr/bin/env bash
# Runs on the GPU machine (no Rust, no network), from the repository root, after
# scripts/gpu-build.sh filled .gpu/ on the build machine: finds the CUDA libraries, runs the
# parity tests with HELORA_REQUIRE_GPU=1 (a missing GPU or driver fails instead of skipping),
# writes logs under $OUT (default .gpu/out) and prints a short summary last.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu/bin ] || cd .. # also works when run as .gpu/gpu-run.sh
gpu=.gpu
out=${OUT:-$gpu/out}
mkdir -p "$out"

{
    echo "== nvidia-smi"
    nvidia-smi || echo "nvidia-smi failed"
    echo "== CUDA libraries known to the loader"
    ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc|libcudart' || true
} 2>&1 | tee "$out/device.log"

# libcuda comes with the driver (loader path); libnvrtc only matters for a build without nvcc.
dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/lib/x86_64-linux-gnu; do
    [ -d "$d" ] && dirs="$dirs:$d"
done
for d in $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null) \
    /usr/local/lib/python3*/dist-packages/nvidia /opt/*/lib/python3*/site-packages/nvidia; do
    for lib in "$d"/cu13/lib "$d"/cuda_nvrtc/lib "$d"/cuda_runtime/lib; do
        [ -d "$lib" ] && dirs="$dirs:$lib"
    done
done
export LD_LIBRARY_PATH="${dirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" | tee -a "$out/device.log"

export HELORA_REQUIRE_GPU=1
start=$(date +%s)
"$gpu/bin/backend_parity" --test-threads=1 2>&1 | tee "$out/backend_parity.log"
status=${PIPESTATUS[0]}
seconds=$(( $(date +%s) - start ))

echo
echo "== summary (commit $(cat "$gpu/commit" 2>/dev/null || echo unknown))"
grep -E '^test |^test result' "$out/backend_parity.log" || true
echo "backend_parity: exit $status in ${seconds}s; logs in $out"
exit "$status"
