#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test (ctest).
# GPU tests (label `gpu`) skip visibly without a device.
#   tools/test.sh            the whole suite
#   tools/test.sh -R Conv    only tests matching a regex (any ctest arguments)
#   tools/test.sh --asan     the CPU suite built with AddressSanitizer + UBSan (and
#                            LeakSanitizer) into build-asan/, CUDA off. Extra arguments go
#                            to the graft_tests binary, e.g. --gtest_filter='-Transfer.*'.
#                            GRAFT_ASAN_FILTER sets the default filter (see docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh --tests

if [[ "${1:-}" == "--asan" ]]; then
  shift
  # Debug-level optimisation keeps stacks readable and the build fast; -O1 keeps the suite
  # fast enough for CI. Werror stays on: the sanitizer build must be as clean as the normal one.
  BUILD_DIR=build-asan tools/build.sh -DGRAFT_ASAN=ON -DGRAFT_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g"
  supp="$PWD/tests/lsan.supp"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  args=("$@")
  if ((${#args[@]} == 0)) && [[ -n "${GRAFT_ASAN_FILTER:-}" ]]; then
    args=("--gtest_filter=$GRAFT_ASAN_FILTER")
  fi
  echo "graft: ASan+UBSan suite: build-asan/tests/graft_tests ${args[*]:-}"
  exec build-asan/tests/graft_tests --gtest_brief=1 "${args[@]}"
fi

tools/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
