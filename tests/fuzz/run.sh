#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, each from a fresh copy of
# its seed corpus and its saved regressions.
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]
# BUILD_DIR is configured with -DCMAKE_C_COMPILER=clang -DLAPSE_FUZZ=ON
# and built with --target lapse_fuzz.  Each run works in
# BUILD_DIR/fuzz-run/TARGET/: corpus/ grows there, and a finding leaves
# its input there as crash-*, leak-* or timeout-*, to be copied into
# tests/fuzz/regressions/TARGET/ once the code is fixed.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]}
seconds=${2:-30}
shift $(($# < 2 ? $# : 2))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(commands results tick_event message auditlog duration)
fi

failed=0
for target in "${targets[@]}"; do
    binary="$build/tests/fuzz/fuzz_$target"
    work="$build/fuzz-run/$target"
    rm -rf "$work"
    mkdir -p "$work/corpus"
    cp -r "$build/tests/fuzz/seeds/$target/." "$work/corpus/"
    if [ -d "$root/tests/fuzz/regressions/$target" ]; then
        cp -r "$root/tests/fuzz/regressions/$target/." "$work/corpus/"
    fi

    # The audit file's longest valid line is 4 KiB, so its inputs may
    # run past that; the other targets keep libFuzzer's default length.
    options=()
    if [ "$target" = auditlog ]; then
        options+=(-max_len=10000)
    fi

    status=0
    "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/" "${options[@]}" \
        "$work/corpus" > "$work/log" 2>&1 || status=$?

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    corpus=$(find "$work/corpus" -type f | wc -l)
    if [ $status -eq 0 ]; then
        echo "fuzz $target: ${runs:-?} runs in ${seconds} s, corpus" \
            "$corpus inputs, no finding"
    else
        echo "fuzz $target: FAILED with status $status; log $work/log"
        grep -E "ERROR|SUMMARY|fuzz:|Test unit written" "$work/log" | head -20
        failed=1
    fi
done
exit $failed
