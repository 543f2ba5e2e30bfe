#!/usr/bin/env bash
# Builds, here (no GPU needed), what the GPU machine runs: the GPU test binaries
# (backend_parity, cuda_graph) and the `helora` binary (for `bench ops/lora --device cuda`),
# all with the `cuda` feature and the kernels compiled to PTX by nvcc, in the release
# profile, stripped, into .gpu/ with
# scripts/gpu-run.sh. Copy the repository (or just .gpu/ and scripts/) to the
# GPU machine and run `bash scripts/gpu-run.sh` from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

cuda_env=$(bash scripts/install-cuda.sh --env)
eval "$cuda_env"
export HELORA_REQUIRE_NVCC=1

out=.gpu
rm -rf "$out"
mkdir -p "$out/bin"

# The GPU test binaries (paths from cargo's JSON messages).
for test in backend_parity cuda_graph; do
    json=$(cargo test -p helora --release --features cuda --test "$test" --no-run \
        --message-format=json)
    binary=$(printf '%s\n' "$json" | TEST="$test" python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m.get("target", {}).get("name") == os.environ["TEST"]:
        print(m["executable"])
')
    if [ -z "$binary" ] || [ ! -f "$binary" ]; then
        echo "gpu-build: could not find the $test test binary" >&2
        exit 1
    fi
    cp "$binary" "$out/bin/$test"
    strip "$out/bin/$test"
done
# The engine binary: the HE backend on CUDA, the base model (candle) on the CPU.
cargo build -p helora-engine --release --features cuda --bin helora
cp target/release/helora "$out/bin/helora"
strip "$out/bin/helora"
cp scripts/gpu-run.sh "$out/"
git rev-parse HEAD > "$out/commit" 2>/dev/null || echo unknown > "$out/commit"

bytes=$(du -sb "$out" | cut -f1)
limit=$((64 * 1024 * 1024))
echo "gpu-build: $out holds $bytes bytes"
if [ "$bytes" -ge "$limit" ]; then
    echo "gpu-build: $out is over 64 MiB" >&2
    exit 1
fi
ls -l "$out" "$out/bin"
