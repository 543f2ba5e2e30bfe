#!/usr/bin/env bash
# Fuzzes every decoder a network peer reaches (fuzz/, issue 16) for SECONDS per target
# (default 60), then prints one line per target: libFuzzer's executions and the crashes on
# file under fuzz/artifacts/TARGET/. Exits non-zero if any target has a crash on file or a
# run fails. Usage: bash scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# cargo-fuzz is installed if missing. It passes nightly-only `-Z` flags (sanitizers), which
# a stable toolchain accepts under RUSTC_BOOTSTRAP=1. Targets are built with AddressSanitizer
# and with debug assertions and overflow checks (-a), as CI's dev profile keeps them.
# Each target starts from fuzz/corpus/TARGET, where the target itself writes a few
# well-formed seeds first (HELORA_FUZZ_SEEDS, fuzz/src/seeds.rs); corpora, artifacts and
# logs (fuzz/logs/TARGET.log) stay out of git. A crash's input is fuzz/artifacts/TARGET/crash-*:
# replay it with `cargo fuzz run -a TARGET FILE`, minimise it with `cargo fuzz tmin -a TARGET
# FILE`, and delete it once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "error: SECONDS_PER_TARGET must be a positive integer, got '$seconds'" >&2
    exit 2
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust first (https://rustup.rs)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# The protocol's messages as each side decodes them, and helora's binary format inside.
targets=(
    seeded_ciphertext  # the server: a client's seeded input, decoded and expanded
    site_request       # the server: a Session request, then each input as above
    evaluation_keys    # the server: a key upload (evaluation keys and public key)
    key_chunk          # the server: one RegisterKeys chunk
    compact_ciphertext # the client: a server's compact reply
    site_reply         # the client: a Session reply, then each output as above
    manifest_reply     # the client: a GetManifest reply
    params             # a serialized parameter set
)
# libFuzzer's own flags per target: a key set of N = 2^13 is large (one switching key is
# 1.1 MB), beyond the default cap on input length (the largest seed, at most 1 MiB).
extra_flags() {
    case "$1" in
        evaluation_keys) echo "-max_len=2097152" ;;
    esac
}
# Crash kinds libFuzzer writes (slow-unit-* files are only reports).
count_crashes() {
    if [ ! -d "artifacts/$1" ]; then
        echo 0
        return
    fi
    find "artifacts/$1" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l
}

cd fuzz
mkdir -p logs
start=$SECONDS
echo "scripts/fuzz.sh: building ${#targets[@]} targets (cargo fuzz build -a)" >&2
cargo fuzz build -a
echo "scripts/fuzz.sh: built in $((SECONDS - start)) s; ${seconds} s per target" >&2

status=0
summary=()
for target in "${targets[@]}"; do
    log="logs/$target.log"
    before=$(count_crashes "$target")
    run_status=0
    # shellcheck disable=SC2046 # the extra flags are words
    HELORA_FUZZ_SEEDS="corpus/$target" cargo fuzz run -a "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 $(extra_flags "$target") \
        >"$log" 2>&1 || run_status=$?
    # The final stats; a run that stopped before them (a crash in start-up) has at most the
    # last `#N` status line.
    execs=$(awk '/^stat::number_of_executed_units:/ { n = $2 } END { print n }' "$log")
    if [ -z "$execs" ]; then
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    fi
    rate=$(awk '/^stat::average_exec_per_sec:/ { r = $2 } END { print r }' "$log")
    after=$(count_crashes "$target")
    line=$(printf '%-20s executions %10s (%s/s)  crashes %d (%d new)' \
        "$target" "${execs:-?}" "${rate:-?}" "$after" $((after - before)))
    if [ "$after" -gt 0 ]; then
        status=1
    fi
    if [ "$run_status" -ne 0 ]; then
        status=1
        line+="  [exit $run_status; see fuzz/$log]"
    fi
    echo "$line" >&2
    summary+=("$line")
done

echo
echo "fuzz summary (${seconds} s per target; logs in fuzz/logs/, inputs in fuzz/artifacts/):"
printf '%s\n' "${summary[@]}"
exit "$status"
