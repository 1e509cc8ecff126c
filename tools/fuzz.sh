#!/usr/bin/env bash
# Fuzzes one parser of outside bytes with libFuzzer (clang++ -fsanitize=fuzzer,address,undefined).
#   tools/fuzz.sh list               the targets this checkout has
#   tools/fuzz.sh TARGET SECONDS     build build-fuzz/TARGET and run it for SECONDS over a copy
#                                    of its seed corpus (tests/fuzz/corpus/TARGET) plus the
#                                    committed crash inputs (tests/fuzz/regressions/TARGET)
#   tools/fuzz.sh TARGET FILE...     run the target once on each FILE (reproduce a crash)
# Prints the executions and exec/s. Exits non-zero on a crash, leak, timeout (-timeout=10 s
# per input) or out-of-memory (-rss_limit_mb=2048), leaving the input that caused it under
# build-fuzz/artifacts/TARGET/. Minimise one with:
#   build-fuzz/TARGET -minimize_crash=1 -runs=20000 -exact_artifact_path=min.bin CRASHFILE
# then commit it to tests/fuzz/regressions/TARGET/ (tests/fuzz_regression_test.cpp replays it).
# Environment: CXX (default clang++), FUZZ_TIMEOUT (seconds per input, default 10; it is wall
# time, so a loaded or niced run needs more), FUZZ_ARGS (extra libFuzzer flags, e.g. -max_len=4096;
# '-fork=1 -ignore_crashes=1' goes on after a crash, collecting every crashing input).
set -euo pipefail
cd "$(dirname "$0")/.."

# target -> the sources it needs besides tests/fuzz/TARGET.cpp (globs allowed). A target is
# available when its own source and every listed (non-glob) source exist. Library code is
# compiled once per source into build-fuzz/obj/ (coverage-instrumented, ASan + UBSan,
# rebuilt when the source or a header it includes changes), archived per target, and
# linked with the target. The CPU GEMM uses its built-in loop here (no OpenBLAS).
all_cpu='base/*.cpp runtime/*.cpp layers/*.cpp kernels/cpu/*.cpp'
declare -A sources=(
  [fuzz_safetensors]="runtime/safetensors.cpp base/shape.cpp runtime/atomic_file.cpp"
  [fuzz_idx]="runtime/idx.cpp"
  [fuzz_idx_gzip]="runtime/idx.cpp"
  [fuzz_image]="runtime/image_decode.cpp runtime/augment.cpp"
  [fuzz_class_map]="runtime/class_map.cpp runtime/atomic_file.cpp"
  [fuzz_head_spec]="layers/head.cpp layers/zoo.cpp $all_cpu"
  [fuzz_specs]="runtime/trainer.cpp layers/zoo.cpp $all_cpu"
  [fuzz_config]="tools/graft/config_file.cpp"
)
order=(fuzz_safetensors fuzz_idx fuzz_idx_gzip fuzz_image fuzz_class_map fuzz_head_spec fuzz_specs fuzz_config)

available() {
  local t=$1 f
  [[ -n "${sources[$t]+x}" && -f "tests/fuzz/$t.cpp" ]] || return 1
  for f in ${sources[$t]}; do [[ $f == *'*'* || -f $f ]] || return 1; done
}

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

[[ $# -ge 1 ]] || usage
if [[ $1 == list ]]; then
  for t in "${order[@]}"; do available "$t" && echo "$t"; done
  exit 0
fi
target=$1
shift
[[ $# -ge 1 ]] || usage
available "$target" || { echo "fuzz.sh: unknown or unavailable target '$target' (tools/fuzz.sh list)" >&2; exit 2; }

cxx=${CXX:-clang++}
out=build-fuzz
bin=$out/$target
mkdir -p "$out/obj"
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined -I. -I/usr/include/stb)

# Compiles $1 to $2 unless $2 is newer than $1 and every header listed in its .d file.
compile() {
  local src=$1 obj=$2 san=$3 dep=${2%.o}.d stale=0 f
  if [[ ! -f $obj || ! -f $dep || $src -nt $obj ]]; then
    stale=1
  else
    for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
      [[ -f $f && ! $f -nt $obj ]] || { stale=1; break; }
    done
  fi
  ((stale)) || return 0
  echo "fuzz.sh: compiling $src"
  # shellcheck disable=SC2086  # $san is a list of flags
  "$cxx" "${flags[@]}" $san -MMD -MF "$dep" -c "$src" -o "$obj"
}

objs=()
declare -A seen=()
# shellcheck disable=SC2086
for src in ${sources[$target]}; do
  [[ -f $src && -z ${seen[$src]+x} ]] || continue
  seen[$src]=1
  obj=$out/obj/${src//\//_}.o
  compile "$src" "$obj" -fsanitize=fuzzer-no-link,address,undefined
  objs+=("$obj")
done
compile "tests/fuzz/$target.cpp" "$out/obj/$target.o" "-fsanitize=fuzzer,address,undefined -DGRAFT_FUZZING"
relink=0
[[ -x $bin ]] || relink=1
for o in "${objs[@]}" "$out/obj/$target.o"; do [[ $o -nt $bin ]] && relink=1; done
if ((relink)); then
  echo "fuzz.sh: linking $bin"
  rm -f "$out/lib$target.a"
  ar rcs "$out/lib$target.a" "${objs[@]}"
  "$cxx" -fsanitize=fuzzer,address,undefined -o "$bin.tmp" "$out/obj/$target.o" "$out/lib$target.a" -lz -lyaml-cpp -lpthread
  mv "$bin.tmp" "$bin"
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
artifacts=$out/artifacts/$target
mkdir -p "$artifacts"
dict=()
[[ -f tests/fuzz/$target.dict ]] && dict=(-dict="tests/fuzz/$target.dict")
common=(-rss_limit_mb=2048 -timeout="${FUZZ_TIMEOUT:-10}" -artifact_prefix="$artifacts/" "${dict[@]}")

if [[ ! $1 =~ ^[0-9]+$ ]]; then  # reproduce: run each file once
  exec "$bin" "${common[@]}" "$@"
fi
seconds=$1

# Work on a copy: what the fuzzer adds stays in build-fuzz/, the committed seeds stay small.
corpus=$out/corpus/$target
mkdir -p "$corpus"
for d in "tests/fuzz/corpus/$target" "tests/fuzz/regressions/$target"; do
  [[ -d $d ]] && find "$d" -maxdepth 1 -type f -exec cp -n {} "$corpus/" \;
done
log=$out/$target.log
echo "fuzz.sh: $target for $seconds s over $(find "$corpus" -type f | wc -l) inputs ($corpus); log $log"
rc=0
# shellcheck disable=SC2086
"$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_ARGS:-} \
  "$corpus" >"$log" 2>&1 || rc=$?
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
# Fork mode (FUZZ_ARGS='-fork=1 -ignore_crashes=1', to go on past a known crash) prints no
# final stats: take the last status line "#RUNS: cov: ... exec/s: N".
[[ -n ${runs:-} ]] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
[[ -n ${speed:-} ]] || speed=$(grep -oE 'exec/s:? [0-9]+' "$log" | tail -1 | awk '{print $NF}' || true)
echo "fuzz.sh: $target: ${runs:-?} executions in $seconds s, ${speed:-?} exec/s, coverage ${cov:-?} edges, corpus $(find "$corpus" -type f | wc -l) inputs"
if ((rc != 0)); then
  tail -n 60 "$log"
  echo "fuzz.sh: $target FAILED (exit $rc); inputs that failed:" >&2
  ls -1 "$artifacts" >&2 || true
  exit "$rc"
fi
echo "fuzz.sh: $target: no crash, leak, timeout or out-of-memory"
