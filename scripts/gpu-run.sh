#!/usr/bin/env bash
# Runs on the GPU machine (no Rust, no network), from the repository root, after
# scripts/gpu-build.sh filled .gpu/ on the build machine: finds the CUDA libraries, then
#   he     the parity and CUDA graph tests with HELORA_REQUIRE_GPU=1 (a missing GPU or
#          driver fails instead of skipping), then the HE benchmarks (`bench ops --device
#          cuda` at N = 2^13 and 2^16, `bench lora --device cuda` at batch 1 and 64);
#   model  the full GPU build (bin/helora-gpu): its tests (bin/gpu, bin/cli_gpu) with
#          HELORA_REQUIRE_GPU=1, then `bench token --device cuda` (SmolLM2-135M secure;
#          ChatGLM2-6B rank 8, 16 tokens, secure and lora; bf16 weights on the GPU, the HE
#          server on a stream of its own);
#   batch  `bench token --device cuda` for ChatGLM2-6B, rank 8, secure, 64 sequences in
#          flight (issue 6's aggregate tokens/s), and its lora reference;
#   sanitize  the N = 2^13 parity tests under compute-sanitizer 13.0 (its wheel in
#          .gpu/tools): memcheck, racecheck, synccheck, initcheck, each within 150 s (not
#          part of `all`: about 10 minutes of device time; the first GPU session runs it);
# writes logs and JSON under $OUT (default .gpu/out) and prints a short summary and a table
# of the figures last. `bash scripts/gpu-run.sh [he|model|batch|all]` (default all; each
# part takes a few minutes on an H100, so run them as separate commands where one has a
# time limit).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu/bin ] || cd .. # also works when run as .gpu/gpu-run.sh
gpu=.gpu
out=${OUT:-$gpu/out}
mkdir -p "$out"
parts=${1:-all}
case "$parts" in
    he | model | batch | sanitize | all) ;;
    *)
        echo "usage: bash scripts/gpu-run.sh [he|model|batch|sanitize|all]" >&2
        exit 2
        ;;
esac
run_he=0
run_model=0
run_batch=0
run_sanitize=0
case "$parts" in
    he) run_he=1 ;;
    sanitize) run_sanitize=1 ;;
    model) run_model=1 ;;
    batch) run_batch=1 ;;
    all) run_he=1 run_model=1 run_batch=1 ;;
esac

{
    echo "== nvidia-smi"
    nvidia-smi || echo "nvidia-smi failed"
    echo "== CUDA libraries known to the loader"
    ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc|libcudart|libcublas|libcurand' || true
} 2>&1 | tee "$out/device.log"

# libcuda comes with the driver (loader path); libnvrtc only matters for the `cuda` build
# without nvcc. The full GPU build (bin/helora-gpu) links libcudart, cuBLAS(Lt), cuRAND and
# NVRTC and does not start without them.
dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/lib/x86_64-linux-gnu; do
    [ -d "$d" ] && dirs="$dirs:$d"
done
for d in $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null) \
    /usr/local/lib/python3*/dist-packages/nvidia /opt/*/lib/python3*/site-packages/nvidia; do
    for lib in "$d"/cu13/lib "$d"/cuda_nvrtc/lib "$d"/cuda_runtime/lib "$d"/cublas/lib \
        "$d"/curand/lib; do
        [ -d "$lib" ] && dirs="$dirs:$lib"
    done
done
export LD_LIBRARY_PATH="${dirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" | tee -a "$out/device.log"

# Refuse to record anything from helora's stand-in driver (cuda-emu: the kernels run on the
# CPU, its "device" is not a GPU and its times are an emulation's).
driver_name=$(python3 - <<'PY' 2>/dev/null
import ctypes
try:
    cuda = ctypes.CDLL("libcuda.so.1")
    name = ctypes.create_string_buffer(256)
    if cuda.cuInit(0) == 0 and cuda.cuDeviceGetName(name, 256, 0) == 0:
        print(name.value.decode(errors="replace"))
except OSError:
    pass
PY
)
echo "CUDA device 0: ${driver_name:-none found}" | tee -a "$out/device.log"
case "$driver_name" in
    *cuda-emu*)
        echo "gpu-run: refusing: libcuda.so.1 on the loader path is helora's stand-in driver" \
            "(cuda-emu), not a GPU; no figures are recorded from it" | tee -a "$out/device.log" >&2
        exit 1
        ;;
esac

export HELORA_REQUIRE_GPU=1
status=0
: >"$out/bench.log"
: >"$out/tests.log"

# The full GPU build's binaries travel as bin/NAME.xz: unpacked here, outside .gpu/ and
# $OUT, with Python's lzma (xz may not be installed).
unpacked=$(mktemp -d "${TMPDIR:-/tmp}/helora-gpu-bin.XXXXXX")
trap 'rm -rf "$unpacked"' EXIT
for packed in "$gpu"/bin/*.xz; do
    [ -f "$packed" ] || continue
    name=$(basename "$packed" .xz)
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$packed" "$unpacked/$name" && chmod +x "$unpacked/$name" ||
        echo "could not unpack $packed" | tee -a "$out/device.log"
done
# The path of binary NAME: in .gpu/bin, or unpacked.
bin() {
    if [ -x "$gpu/bin/$1" ]; then echo "$gpu/bin/$1"; else echo "$unpacked/$1"; fi
}

# A test binary with HELORA_REQUIRE_GPU=1; its exit status and time go to tests.log.
run_tests() {
    local name=$1
    shift
    local t0=$(date +%s) binary rc=1
    binary=$(bin "$name")
    if [ -x "$binary" ]; then
        "$@" "$binary" --test-threads=1 2>&1 | tee "$out/$name.log"
        rc=${PIPESTATUS[0]}
    else
        echo "no $gpu/bin/$name" | tee "$out/$name.log"
    fi
    echo "$name: exit $rc in $(( $(date +%s) - t0 ))s" >>"$out/tests.log"
    [ "$rc" -eq 0 ] || status=1
}

# The benchmarks: JSON on stdout, progress and errors in the logs. Each has a time limit so
# each part stays well under 10 minutes.
bench() {
    local name=$1 binary limit=$3
    binary=$(bin "$2")
    shift 3
    local t0=$(date +%s)
    if [ ! -x "$binary" ]; then
        echo "$name: no $binary, not run" | tee -a "$out/bench.log"
        status=1
        return
    fi
    timeout "$limit" "$binary" bench "$@" --json >"$out/$name.json" 2>"$out/$name.log"
    local rc=$?
    echo "$name: exit $rc in $(( $(date +%s) - t0 ))s" | tee -a "$out/bench.log"
    [ "$rc" -eq 0 ] || { tail -5 "$out/$name.log"; status=1; }
}

if [ "$run_he" = 1 ]; then
    run_tests backend_parity env
    run_tests cuda_graph env
    run_tests cuda_secure env
    bench ops_n8192 helora 240 ops --device cuda --n 8192
    bench ops_n65536 helora 240 ops --device cuda --n 65536
    bench lora_batch1 helora 240 lora --device cuda --batch 1
    bench lora_batch64 helora 240 lora --device cuda --batch 64
fi
if [ "$run_model" = 1 ]; then
    # The tests find the binary and the test data of this copy of the repository.
    run_tests gpu env HELORA_ENGINE_DIR="$PWD/engine"
    run_tests cli_gpu env HELORA_BIN="$(bin helora-gpu)"
    bench token_smollm2_cuda helora-gpu 240 token --preset smollm2-135m --device cuda
    bench token_chatglm2_secure_cuda helora-gpu 300 token --preset chatglm2-6b --rank 8 \
        --device cuda --mode secure --tokens 16
    bench token_chatglm2_lora_cuda helora-gpu 240 token --preset chatglm2-6b --rank 8 \
        --device cuda --mode lora --tokens 16
fi
if [ "$run_sanitize" = 1 ]; then
    # compute-sanitizer from its wheel (unpacked with Python's zipfile: unzip may be missing).
    tools=$(mktemp -d "${TMPDIR:-/tmp}/helora-sanitizer.XXXXXX")
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
        "$gpu"/tools/nvidia_cuda_sanitizer_api-*.whl "$tools" || echo "no sanitizer wheel in $gpu/tools"
    sanitizer="$tools/nvidia/cu13/bin/compute-sanitizer"
    chmod +x "$sanitizer" 2>/dev/null
    for tool in memcheck racecheck synccheck initcheck; do
        t0=$(date +%s)
        if [ -x "$sanitizer" ]; then
            timeout 150 "$sanitizer" --tool "$tool" --error-exitcode 86 --print-limit 20 \
                "$(bin backend_parity)" --test-threads=1 _n13 2>&1 |
                tee "$out/sanitize_$tool.log"
            rc=${PIPESTATUS[0]}
        else
            echo "no compute-sanitizer" | tee "$out/sanitize_$tool.log"
            rc=1
        fi
        echo "compute-sanitizer $tool: exit $rc in $(( $(date +%s) - t0 ))s" >>"$out/tests.log"
        [ "$rc" -eq 0 ] || status=1
    done
    rm -rf "$tools"
fi
if [ "$run_batch" = 1 ]; then
    # 64 sequences × (8 prompt + 8 decoded + 1) positions stay within the PLL's budget.
    bench token_chatglm2_batch64_cuda helora-gpu 420 token --preset chatglm2-6b --rank 8 \
        --device cuda --mode secure --tokens 8 --prompt-tokens 8 --batch 64
fi

echo
echo "== summary (commit $(cat "$gpu/commit" 2>/dev/null || echo unknown))"
for name in backend_parity cuda_graph cuda_secure gpu cli_gpu; do
    [ -f "$out/$name.log" ] && grep -E '^test |^test result|^skipped' "$out/$name.log"
done
cat "$out/tests.log" "$out/bench.log"
echo "logs in $out"
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
        continue
    print(f"{name}: apply {r['apply_us']:.1f} µs (floor {r['apply_floor_us']:.1f}, ratio "
          f"{r['apply_floor_ratio']:.2f}; queued in {r['apply_queue_us']:.1f}, {r['launches_per_apply']} launches), upload+apply {r['apply_path_us']:.1f}, token-layer "
          f"{r['token_layer_us']:.1f} (target ≤ 100); batch {r['batch']}: "
          f"{r['applies_per_s']:.0f} applies/s (target ≥ 40000), rel. error {r['relative_error']:.1e}")
    if 'graph_apply_us' in r:
        print(f"  graph replay {r['graph_apply_us']:.1f} µs ({r['graph_launches_per_apply']} launch "
              f"vs {r['launches_per_apply']} eager; captured in {r['graph_capture_ms']:.1f} ms)")
for name in ("token_smollm2_cuda", "token_chatglm2_secure_cuda", "token_chatglm2_lora_cuda",
             "token_chatglm2_batch64_cuda"):
    r = load(name)
    if r is None:
        continue
    b = r["breakdown"]
    print(f"{name}: {r['preset']} {r['mode']} on {r['device']} ({r.get('weight_dtype')}), "
          f"batch {r['batch']}: {r['tokens_per_s']:.0f} tokens/s (target at batch 64: ≥ 1000), "
          f"{r['ms_per_token']:.1f} ms/step median (p90 {r['p90_ms_per_token']:.1f}), "
          f"lora {r['lora_ms_per_token']:.1f}, overhead {r['overhead_ratio']:.2f}x; "
          f"base forward {b['base_forward']:.1f}, encrypt {b['encrypt']:.1f}, "
          f"evaluate {b['he_eval']:.1f}, decrypt {b['decrypt']:.1f}, copies {b['copies']:.2f}")
PY
exit "$status"
