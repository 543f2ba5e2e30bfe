#!/usr/bin/env bash
# Builds, here (no GPU needed), what the GPU machine runs, in the release profile, stripped,
# into .gpu/ with scripts/gpu-run.sh:
#   bin/backend_parity, bin/cuda_graph, bin/cuda_secure   the HE parity, CUDA graph and
#                        two-stream PLL server tests (feature `cuda`)
#   bin/helora           `bench ops/lora --device cuda` (feature `cuda`: starts anywhere)
#   bin/helora-gpu.xz    the full GPU build (helora-engine/gpu): the base model on CUDA too,
#                        for `generate` and `bench token --device cuda`
#   bin/gpu.xz, bin/cli_gpu.xz  that build's tests
# The full GPU build's binaries are xz-compressed (candle's MoE kernels put 33 MB of sm_90a
# code in each; gpu-run.sh unpacks them).
# The kernels are compiled by nvcc (ours to PTX, candle's for CUDA_COMPUTE_CAP=90). The full
# GPU build links against scripts/cuda-stubs.sh's stand-ins here, without an rpath, so the
# GPU machine's real CUDA libraries load there. Copy the repository (or .gpu/, scripts/ and
# engine/tests/data/) to the GPU machine and run `bash scripts/gpu-run.sh` from the
# repository root.
set -euo pipefail
cd "$(dirname "$0")/.."

cuda_env=$(bash scripts/install-cuda.sh --env)
eval "$cuda_env"
export HELORA_REQUIRE_NVCC=1

out=.gpu
rm -rf "$out"
mkdir -p "$out/bin"

# Copies test binary NAME, built by `cargo test ... --no-run --message-format=json` whose
# messages are on stdin, to .gpu/bin/NAME (stripped).
copy_test() {
    local name=$1 binary
    binary=$(python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m.get("target", {}).get("name") == sys.argv[1]:
        print(m["executable"])
' "$name")
    if [ -z "$binary" ] || [ ! -f "$binary" ]; then
        echo "gpu-build: could not find the $name test binary" >&2
        exit 1
    fi
    cp "$binary" "$out/bin/$name"
    strip "$out/bin/$name"
}

for test in backend_parity cuda_graph cuda_secure; do
    json=$(cargo test -p helora --release --features cuda --test "$test" --no-run \
        --message-format=json)
    printf '%s\n' "$json" | copy_test "$test"
done
# The engine binary: the HE backend on CUDA, the base model (candle) on the CPU.
cargo build -p helora-engine --release --features cuda --bin helora
cp target/release/helora "$out/bin/helora"
strip "$out/bin/helora"

# The full GPU build, last: it replaces target/release/helora.
stubs_env=$(bash scripts/cuda-stubs.sh --env)
eval "$stubs_env"
export CUDA_COMPUTE_CAP=90
cargo build -p helora-engine --release --features gpu --bin helora
cp target/release/helora "$out/bin/helora-gpu"
strip "$out/bin/helora-gpu"
json=$(cargo test -p helora-engine --release --features gpu --test gpu --test cli_gpu --no-run \
    --message-format=json)
for name in gpu cli_gpu; do
    printf '%s\n' "$json" | copy_test "$name"
done
for name in helora-gpu gpu cli_gpu; do
    xz -T0 -6 -f "$out/bin/$name"
done
cp scripts/gpu-run.sh "$out/"
# compute-sanitizer 13.0 (memcheck, racecheck, synccheck, initcheck of the parity tests in
# gpu-run.sh's `sanitize` part): its pip wheel (14 MB), cached, carried as it is.
sanitizer=nvidia_cuda_sanitizer_api-13.0.85-py3-none-manylinux_2_25_x86_64.whl
cache=${XDG_CACHE_HOME:-$HOME/.cache}/helora/wheels
if [ ! -f "$cache/$sanitizer" ]; then
    mkdir -p "$cache"
    python3 -m pip download --no-deps -q -d "$cache" nvidia-cuda-sanitizer-api==13.0.85
fi
mkdir -p "$out/tools"
cp "$cache/$sanitizer" "$out/tools/"
git rev-parse HEAD > "$out/commit" 2>/dev/null || echo unknown > "$out/commit"

bytes=$(du -sb "$out" | cut -f1)
limit=$((64 * 1024 * 1024))
echo "gpu-build: $out holds $bytes bytes"
if [ "$bytes" -ge "$limit" ]; then
    echo "gpu-build: $out is over 64 MiB" >&2
    exit 1
fi
ls -l "$out" "$out/bin"
