#!/usr/bin/env bash
# Installs the Debian 12 packages Lapse builds, runs and tests with.
# Usage: deploy/install-deps.sh [--test]
# --test adds what only tests/run.sh needs: clang with its sanitizer and
# libFuzzer runtimes, llvm-symbolizer for readable sanitizer stacks, and
# libfaketime, which the clock-jump test preloads into the registry.
# Does nothing when every package is already installed; otherwise runs
# apt-get as root, or through sudo when not root.
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libzmq3-dev libczmq-dev libsqlite3-dev libmsgpack-dev
    libcmocka-dev libxxhash-dev sqlite3
)
if [ "${1:-}" = "--test" ]; then
    packages+=(clang libclang-rt-14-dev llvm-14 libfaketime)
elif [ $# -gt 0 ]; then
    echo "usage: $0 [--test]" >&2
    exit 2
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
