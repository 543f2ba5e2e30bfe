#!/usr/bin/env bash
# The one test command for a fresh machine: installs what the tests need (today nothing
# beyond a Rust toolchain), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust first (https://rustup.rs)" >&2
    exit 1
fi

# Tests run HE workloads up to N = 2^16; the dev profile is optimised for that.
cargo test --workspace "$@"
