#!/usr/bin/env bash
# Runs on the GPU machine (no Rust, no network), from the repository root, after
# scripts/gpu-build.sh filled .gpu/ on the build machine: finds the CUDA libraries, runs the
# GPU tests with HELORA_REQUIRE_GPU=1 (a missing GPU or driver fails instead of skipping),
# then the GPU benchmarks (`bench ops --device cuda` at N = 2^13 and 2^16, `bench lora
# --device cuda` at batch 1 and 64), writes logs and JSON under $OUT (default .gpu/out) and
# prints a short summary and a table of the figures last. A few minutes on an H100.
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
# CUDA graphs of the LoRA apply (tests/cuda_graph.rs).
"$gpu/bin/cuda_graph" --test-threads=1 2>&1 | tee "$out/cuda_graph.log"
graph_status=${PIPESTATUS[0]}

# The benchmarks: JSON on stdout, progress and errors in the logs. Each has a time limit so
# the whole run stays well under 10 minutes.
bench() {
    local name=$1
    shift
    local t0=$(date +%s)
    timeout 240 "$gpu/bin/helora" bench "$@" --json >"$out/$name.json" 2>"$out/$name.log"
    local rc=$?
    echo "$name: exit $rc in $(( $(date +%s) - t0 ))s" | tee -a "$out/bench.log"
    [ "$rc" -eq 0 ] || { tail -5 "$out/$name.log"; bench_status=1; }
}
bench_status=0
if [ -x "$gpu/bin/helora" ]; then
    bench ops_n8192 ops --device cuda --n 8192
    bench ops_n65536 ops --device cuda --n 65536
    bench lora_batch1 lora --device cuda --batch 1
    bench lora_batch64 lora --device cuda --batch 64
else
    echo "no $gpu/bin/helora: benchmarks not run" | tee -a "$out/bench.log"
    bench_status=1
fi

echo
echo "== summary (commit $(cat "$gpu/commit" 2>/dev/null || echo unknown))"
grep -E '^test |^test result' "$out/backend_parity.log" || true
grep -E '^test |^test result' "$out/cuda_graph.log" || true
echo "backend_parity: exit $status in ${seconds}s; cuda_graph: exit $graph_status; logs in $out"
cat "$out/bench.log"
python3 - "$out" <<'PY' || true
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
print("\n== GPU figures (µs, CUDA events, medians; floor = bytes that must move / copy bandwidth)")
for name in ("ops_n8192", "ops_n65536"):
    r = load(name)
    if r is None:
        print(f"{name}: no result")
        continue
    print(f"{name}: {r.get('device')}, copy bandwidth {r.get('copy_bandwidth_gbs')} GB/s, "
          f"{r.get('limbs')} limbs, NTT batch of {r.get('ntt_batch_limbs')} limbs, "
          f"key switch over {r.get('key_switch_limbs')} primes")
    for op in ("ntt", "intt", "ntt_poly", "ntt_batch", "ct_pt_mul", "ct_ct_mul_relin",
               "rescale", "key_switch", "key_switch_pipelined", "rotate", "hoisted_rotate_8"):
        print(f"  {op:<22} {r.get(op + '_us', '-'):>10}  floor {r.get(op + '_floor_us', '-'):>8}"
              f"  ratio {r.get(op + '_floor_ratio', '-'):>6}  launches {r.get('launches', {}).get(op + '_us', '-')}")
for name in ("lora_batch1", "lora_batch64"):
    r = load(name)
    if r is None:
        print(f"{name}: no result")
        continue
    print(f"{name}: apply {r['apply_us']:.1f} µs (floor {r['apply_floor_us']:.1f}, ratio "
          f"{r['apply_floor_ratio']:.2f}; queued in {r['apply_queue_us']:.1f}, {r['launches_per_apply']} launches), upload+apply {r['apply_path_us']:.1f}, token-layer "
          f"{r['token_layer_us']:.1f} (target ≤ 100); batch {r['batch']}: "
          f"{r['applies_per_s']:.0f} applies/s (target ≥ 40000), rel. error {r['relative_error']:.1e}")
    if 'graph_apply_us' in r:
        print(f"  graph replay {r['graph_apply_us']:.1f} µs ({r['graph_launches_per_apply']} launch "
              f"vs {r['launches_per_apply']} eager; captured in {r['graph_capture_ms']:.1f} ms)")
PY
[ "$status" -eq 0 ] && status=$graph_status
[ "$status" -eq 0 ] && status=$bench_status
exit "$status"
