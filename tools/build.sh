#!/usr/bin/env bash
# Configures and builds graft into build/ (Release, warnings as errors). Extra arguments go
# to CMake, e.g. tools/build.sh -DGRAFT_CUDA=OFF. BUILD_DIR overrides the folder;
# BUILD_TARGET builds one target (e.g. graft) instead of everything.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
mkdir -p "$build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_WERROR=ON "$@" >"$build_dir/configure.log" 2>&1 ||
  { cat "$build_dir/configure.log"; exit 1; }
grep -E "^-- graft:" "$build_dir/configure.log" || true
cmake --build "$build_dir" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
