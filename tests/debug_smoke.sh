#!/usr/bin/env bash
# Debug-build smoke run (called by .ci/run after the test suite): every corpus and
# concurrency program, JIT and --interp, with a debug binary, which keeps Rust's overflow
# checks and Cranelift's debug assertions that release builds skip. Only panics fail it:
# outputs are the release tests' business, and a debug run cut short by the time limit is
# not a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build -p stmjit || exit 1
bin=target/debug/stmjit
err=$(mktemp)
trap 'rm -f "$err"' EXIT
failed=0
for f in tests/corpus/*.lang tests/concurrency/*.lang; do
    for mode in "" --interp; do
        timeout 20 "$bin" run $mode "$f" >/dev/null 2>"$err" </dev/null
        if grep -q "panicked at" "$err"; then
            echo "debug smoke: $bin run $mode $f panicked:"
            grep -A2 "panicked at" "$err" | head -5
            failed=1
        fi
    done
done
[ "$failed" = 0 ] && echo "debug smoke: no panic"
exit "$failed"
