#!/usr/bin/env bash
# Installs what is missing, then runs three passes, each in a build
# folder of its own:
#   1. BUILD: warnings as errors, every unit and integration test.
#   2. BUILD-asan: the same suite built with AddressSanitizer and
#      UndefinedBehaviorSanitizer and run with LeakSanitizer on, so that
#      a leak in a program that an integration test spawns fails it.
#   3. BUILD-fuzz: each fuzz target (clang and libFuzzer) for
#      LAPSE_FUZZ_SECONDS seconds (default 30) from a copy of its seeds.
# Usage: tests/run.sh [BUILD_DIR]   (default: build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build"}
fuzz_seconds=${LAPSE_FUZZ_SECONDS:-30}
jobs=$(nproc)

"$root/deploy/install-deps.sh" --test

echo "== build and test in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLAPSE_WERROR=ON -DBUILD_TESTING=ON
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j 2 --timeout 300

echo "== build and test with sanitizers in $build-asan"
cmake -S "$root" -B "$build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLAPSE_WERROR=ON -DBUILD_TESTING=ON -DLAPSE_SANITIZE=ON
cmake --build "$build-asan" -j "$jobs"
# The spawned programs inherit these.  verify_asan_link_order=0 lets a
# test LD_PRELOAD a shim (clock_jump_keeps_clients fakes the clock) in
# front of the ASan runtime, which ASan otherwise refuses to start with.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:verify_asan_link_order=0 \
LSAN_OPTIONS=suppressions="$root/tests/lsan.supp" \
UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$build-asan" --output-on-failure -j 2 --timeout 300

echo "== fuzz for $fuzz_seconds s per target in $build-fuzz"
cmake -S "$root" -B "$build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DLAPSE_WERROR=ON -DBUILD_TESTING=ON \
    -DLAPSE_FUZZ=ON
cmake --build "$build-fuzz" -j "$jobs" --target lapse_fuzz
"$root/tests/fuzz/run.sh" "$build-fuzz" "$fuzz_seconds"
