#!/usr/bin/env bash
# Builds the Python package (python/, PyO3 + maturin) and runs its tests (python/tests) with
# pytest, in a virtualenv cached under helora's cache dir with torch (CPU use of the PyPI
# wheel), transformers, peft, pytest and maturin. The first run creates it (about 3 GB of
# wheels, 2 minutes here); later runs find its marker file and install nothing.
#
#   bash scripts/python-test.sh [PYTEST ARGS...]
#
# The extension is built in the dev profile into the workspace's target dir (CARGO_TARGET_DIR
# if set), so that after `cargo test --workspace` it reuses the compiled dependencies
# (python/Cargo.toml aligns their features with the tests'); the tests start the `helora`
# binary of the same build (HELORA_BIN overrides it).
# HELORA_REQUIRE_GPU=1 turns the CUDA test's skip (no GPU) into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# torch is the PyPI wheel: PyPI has no CPU-only build for Linux x86_64, and torch does not
# import without the CUDA libraries it links (nvidia-* wheels), so they come too; triton is
# torch's requirement as well. Changing a pin rebuilds the environment.
PACKAGES=(
    torch==2.15.0
    transformers==5.25.0
    peft==0.21.2
    safetensors==0.8.0
    numpy==2.4.6
    pytest==9.2.0
    maturin==1.16.0
)

source scripts/setup-common.sh
say() { echo "python-test: $*" >&2; }

command -v python3 >/dev/null 2>&1 || die "python3 not found (the Python package needs 3.9 or later)"
cache=$(helora_cache_dir)
venv="$cache/python-venv"
marker="$venv/.installed"
# The marker holds the interpreter and the pins: another python3 or other pins reinstall.
want="$(python3 -c 'import sys; print(sys.version.split()[0])') ${PACKAGES[*]}"
python="$venv/bin/python"

if [[ -f $marker && "$(cat "$marker")" == "$want" && -x $python ]]; then
    say "environment $venv (cached)"
else
    say "creating $venv: ${PACKAGES[*]}"
    start=$SECONDS
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$python" -m pip install --quiet --only-binary=:all: --progress-bar off "${PACKAGES[@]}" >&2 ||
        die "pip could not install the test environment (see pip's message above)"
    # Written last: an interrupted install has no marker and is redone.
    printf '%s\n' "$want" >"$marker"
    say "installed in $((SECONDS - start)) s ($(du -sh "$venv" | cut -f1))"
fi

# The extension module, in the dev profile (the tests' own), then the wheel into the venv.
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
start=$SECONDS
"$python" -m maturin build --profile dev --manifest-path python/Cargo.toml \
    --interpreter "$python" --out "$wheels" >&2
"$python" -m pip install --quiet --no-deps --force-reinstall "$wheels"/helora-*.whl >&2
say "built and installed the package in $((SECONDS - start)) s"

# The server the remote tests start: the dev build's binary. Built beside the extension's
# package, its dependencies resolve as the extension's (and the tests') do: nothing is rebuilt.
if [[ -z "${HELORA_BIN:-}" ]]; then
    cargo build -p helora-engine -p helora-python --bin helora >&2
    target=${CARGO_TARGET_DIR:-target}
    export HELORA_BIN="$target/debug/helora"
fi

"$python" -m pytest python/tests "$@"
