#!/usr/bin/env bash
# Installs what is missing, builds Lapse with warnings as errors, and
# runs every test (unit and integration) through CTest.
# Usage: tests/run.sh [BUILD_DIR]   (default: build)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build"}

"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLAPSE_WERROR=ON -DBUILD_TESTING=ON
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j 2 --timeout 300
