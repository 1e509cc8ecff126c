#!/usr/bin/env bash
# The examples against an installed graft, as a consumer outside the tree would build them:
# builds graft's libraries (build-examples/, or build-examples-asan/ with --asan), installs
# them into a fresh temporary prefix, then configures, builds and runs every example under
# examples/ (cpp against libgraft.so and libgraft.a, c, fortran) with nothing but that
# prefix (CMAKE_PREFIX_PATH, pkg-config); the build tree is never on their paths.
#   tools/examples.sh           the examples, built and run
#   tools/examples.sh --asan    graft and the examples with AddressSanitizer/UBSan (the sanitizer stage)
# GRAFT_EXAMPLES_BUILD=<dir>: build the libraries in that existing, configured build folder
# instead (its own options; --asan then only instruments the examples).
# Prints how long it took. Exits non-zero naming the example that failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
asan=0
case "${1:-}" in
  "") ;;
  --asan) asan=1 ;;
  *) echo "usage: tools/examples.sh [--asan]" >&2; exit 2 ;;
esac
start=$(date +%s)
build="${GRAFT_EXAMPLES_BUILD:-$root/build-examples$([[ $asan == 1 ]] && echo -asan || true)}"
work=$(mktemp -d "${TMPDIR:-/tmp}/graft-examples.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
jobs=${GRAFT_JOBS:-$(nproc)}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)

step() { printf '\n== %s\n' "$*"; }

step "graft's libraries ($build)"
if [[ -z "${GRAFT_EXAMPLES_BUILD:-}" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DGRAFT_ASAN=$([[ $asan == 1 ]] && echo ON || echo OFF) "${launcher[@]}" >"$work/configure.log" ||
    { cat "$work/configure.log"; exit 1; }
fi
cmake --build "$build" -j "$jobs" --target graft_shared graft_static
step "install into $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null

flags=(-O1 -g)
[[ $asan == 1 ]] && flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp}
consumer=(-G Ninja --no-warn-unused-cli -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo
          -DCMAKE_C_FLAGS="${flags[*]}" -DCMAKE_CXX_FLAGS="${flags[*]}" -DCMAKE_Fortran_FLAGS="${flags[*]}"
          -DCMAKE_EXE_LINKER_FLAGS="$([[ $asan == 1 ]] && echo -fsanitize=address,undefined || true)")

# Builds examples/$1 in $work/$2 with the extra cmake arguments after it and runs `$3 args`.
run_example() {
  local src=$1 dir=$2 exe=$3; shift 3
  local -a extra=() run=()
  while [[ $# -gt 0 && $1 != -- ]]; do extra+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift && run=("$@")
  step "examples/$src ($dir)"
  cmake -S "$root/examples/$src" -B "$work/$dir" "${consumer[@]}" "${extra[@]}" >"$work/$dir.log" ||
    { cat "$work/$dir.log"; echo "examples/$src: configure failed" >&2; exit 1; }
  cmake --build "$work/$dir" >>"$work/$dir.log" || { cat "$work/$dir.log"; echo "examples/$src: build failed" >&2; exit 1; }
  # The shared library must come from the prefix, never from the build tree.
  if ldd "$work/$dir/$exe" | grep -q "libgraft.so" && ! ldd "$work/$dir/$exe" | grep "libgraft.so" | grep -q "$prefix"; then
    ldd "$work/$dir/$exe" | grep libgraft >&2; echo "examples/$src: libgraft.so is not the installed one" >&2; exit 1
  fi
  "$work/$dir/$exe" "${run[@]}" || { echo "examples/$src: $exe failed" >&2; exit 1; }
}

run_example cpp cpp-shared fine_tune
run_example cpp cpp-static fine_tune -DGRAFT_STATIC=ON
[[ -d "$root/examples/c" ]] && run_example c c fine_tune_c
if command -v pkg-config >/dev/null; then  # the C example once more, with pkg-config's flags only
  step "examples/c through pkg-config"
  read -r -a pc <<<"$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs graft)"
  cc -std=c99 -Wall -Werror "${flags[@]}" "$root/examples/c/fine_tune.c" "${pc[@]}" -Wl,-rpath,"$prefix/lib" \
    -o "$work/fine_tune_pc" || { echo "examples/c: pkg-config build failed" >&2; exit 1; }
  "$work/fine_tune_pc" >/dev/null || { echo "examples/c (pkg-config): failed" >&2; exit 1; }
  echo "built with: ${pc[*]}; ran"
fi
if [[ -d "$root/examples/fortran" ]]; then
  run_example fortran fortran fine_tune_f
  step "examples/fortran (fortran): sequence_f"
  "$work/fortran/sequence_f" || { echo "examples/fortran: sequence_f failed" >&2; exit 1; }
fi

printf '\nexamples: all ran against the install in %ss%s\n' "$(( $(date +%s) - start ))" \
  "$([[ $asan == 1 ]] && echo ' (AddressSanitizer, UBSan)' || true)"
