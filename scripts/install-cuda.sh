#!/usr/bin/env bash
# Installs the CUDA 13.0 compiler (nvcc, NVVM, ptxas, headers, NVRTC) from pip wheels into
# helora's cache, so machines without a CUDA toolkit (development, CI) can compile kernels/.
# 13.0 is pinned: the GPU machines' driver (580) refuses PTX from newer compilers.
#
#   bash scripts/install-cuda.sh                installs once; the last line is CUDA_HOME=...
#   eval "$(bash scripts/install-cuda.sh --env)"   installs once; exports CUDA_HOME and PATH
#
# Progress and errors go to stderr, so `--env` prints nothing but the exports on stdout.
# A second run finds the marker file and returns at once.
set -euo pipefail

WHEELS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvrtc==13.0.88
)

source "$(dirname "${BASH_SOURCE[0]}")/setup-common.sh"
setup_args install 10 "$@"

say() { echo "install-cuda: $*" >&2; }

cache=$(helora_cache_dir)
root="$cache/cuda-13.0"
cuda_home="$root/nvidia/cu13"
marker="$root/.installed"
# The marker holds the wheel list: changing the pins above reinstalls.
want="${WHEELS[*]}"

print_result() {
    if [[ $mode == env ]]; then
        printf 'export CUDA_HOME=%q\n' "$cuda_home"
        printf 'export PATH=%q:"$PATH"\n' "$cuda_home/bin"
    else
        printf 'CUDA_HOME=%s\n' "$cuda_home"
    fi
}

if [[ -f $marker && "$(cat "$marker")" == "$want" && -x $cuda_home/bin/nvcc ]]; then
    print_result
    exit 0
fi

command -v python3 >/dev/null 2>&1 ||
    die "python3 not found; it is needed to download the CUDA compiler wheels with pip"
python3 -m pip --version >/dev/null 2>&1 ||
    die "pip is not available for python3 (try: python3 -m ensurepip --user, or install python3-pip)"

# Build in a staging folder next to the final one and rename it at the end, so an
# interrupted run never leaves a half-installed prefix behind the marker.
mkdir -p "$cache"
stage=$(mktemp -d "$cache/cuda-13.0.tmp.XXXXXX")
trap 'rm -rf "$stage"' EXIT

say "downloading ${WHEELS[*]}"
start=$SECONDS
if ! python3 -m pip download --no-deps --only-binary=:all: --progress-bar off \
    -d "$stage/wheels" "${WHEELS[@]}" >&2; then
    die "pip could not download the CUDA 13.0 wheels (see pip's message above); by hand:
  python3 -m pip download --no-deps --only-binary=:all: -d DIR ${WHEELS[*]}"
fi

say "unpacking into $root"
for wheel in "$stage"/wheels/*.whl; do
    # python3's zipfile instead of unzip: one tool fewer to require.
    python3 -m zipfile -e "$wheel" "$stage/prefix" ||
        die "could not unpack $(basename "$wheel")"
done
rm -rf "$stage/wheels"

staged_home="$stage/prefix/nvidia/cu13"
[[ -f $staged_home/bin/nvcc ]] || die "the wheels did not provide nvidia/cu13/bin/nvcc"
# Zip archives from wheels carry no execute bits.
chmod +x "$staged_home"/bin/* "$staged_home"/nvvm/bin/*
"$staged_home/bin/nvcc" --version >/dev/null 2>&1 ||
    die "the unpacked nvcc does not run: $("$staged_home/bin/nvcc" --version 2>&1 | tail -n 1)"
printf '%s\n' "$want" >"$stage/prefix/.installed"

rm -rf "$root"
if ! mv -T "$stage/prefix" "$root" 2>/dev/null; then
    # Another run installed it at the same time; its copy is as good as ours.
    [[ -f $marker && "$(cat "$marker")" == "$want" ]] || die "could not move the prefix to $root"
fi
say "done in $((SECONDS - start)) s"
print_result
