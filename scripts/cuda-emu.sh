#!/usr/bin/env bash
# Builds the stand-in CUDA driver (cuda-emu/: helora's PTX run on the CPU, with memory, race
# and launch checks; no GPU needed) and installs it as libcuda.so.1 and libcuda.so in
# target/cuda-emu/ (or $1). With --env, prints the export that puts it on the loader path:
#   eval "$(bash scripts/cuda-emu.sh --env)"
# Then the `cuda` feature's tests and benches run on it: with HELORA_REQUIRE_GPU=1 a GPU
# test that does not run fails. The device it reports is "helora cuda-emu (not a GPU)":
# the benches refuse to time it and scripts/gpu-run.sh refuses to record from it.
set -euo pipefail
cd "$(dirname "$0")/.."
env_only=0
if [ "${1:-}" = "--env" ]; then
    env_only=1
    shift
fi
target=${CARGO_TARGET_DIR:-target}
dir=${1:-$target/cuda-emu}
cargo build -q -p helora-cuda-emu >&2
mkdir -p "$dir"
cp -f "$target/debug/libcuda.so" "$dir/libcuda.so.1"
ln -sf libcuda.so.1 "$dir/libcuda.so"
dir=$(cd "$dir" && pwd)
if [ "$env_only" = 1 ]; then
    echo "export LD_LIBRARY_PATH=$dir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
else
    echo "$dir/libcuda.so.1"
fi
