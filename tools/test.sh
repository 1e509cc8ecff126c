#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test (ctest).
# GPU tests (label `gpu`) skip visibly without a device.
#   tools/test.sh            the whole suite
#   tools/test.sh -R Conv    only tests matching a regex (any ctest arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
tools/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
