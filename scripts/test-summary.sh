#!/usr/bin/env bash
# One summary line over the test log on stdin (cargo test's output): the totals of cargo's
# per-binary `test result:` lines, with the tests that printed "skipped: <reason>" (they
# pass for cargo: a GPU, a compiler or a CPU feature is missing) counted as skipped, not
# passed.
set -euo pipefail
awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i == "passed;") p += $(i - 1)
            if ($i == "failed;") f += $(i - 1)
            if ($i == "ignored;") g += $(i - 1)
        }
    }
    # A test writes its line straight to stderr, so it may follow "test name ... " on the
    # same line: count every occurrence.
    { s += gsub(/skipped: /, "&") }
    END { printf "summary: %d passed, %d failed, %d skipped, %d ignored\n", p - s, f, s, g }'
