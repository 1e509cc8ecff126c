#!/usr/bin/env bash
# The one script a GPU session runs: build the CUDA backend for Hopper, run every GPU suite
# (ctest label `gpu`: native and library kernels against the CPU reference), record the
# device, run short compute-sanitizer memcheck and racecheck passes, and print a summary last.
#
#   OUT=/tmp/graft-device-check bash tools/device-check.sh
#
# Logs under $OUT: build.log, gpu-tests.log, device.txt, memcheck.log, racecheck.log,
# bench-*.json, compare/ and compare.log, summary.txt.
# Without a GPU (no nvidia-smi, or no device) it still builds, reports that the GPU tests
# were skipped, and exits 0 unless the build or a test really failed. With a GPU, GPU tests
# that skip count as a failure (the device was there but the tests could not use it).
# Environment: OUT, BUILD_DIR (build-device), JOBS (nproc with a GPU, 2 without), DEADLINE (540 s),
# ARCHS (90), MEMCHECK=0 to skip the sanitizers, BENCH=0 to skip the quick benchmarks
# (graft bench --kernels native|library on vgg16 frozen, with and without --frozen-chunk, bf16,
# graft_tc_gemm_bench, then bench/compare.sh for vgg16 frozen, bf16 and fp32).
set -euo pipefail

OUT=${OUT:-/tmp/graft-device-check}
BUILD_DIR=${BUILD_DIR:-build-device}
ARCHS=${ARCHS:-90}
MEMCHECK=${MEMCHECK:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p "$OUT"
: >"$OUT/summary.txt"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
# One device call is at most 10 minutes: every stage after the build gets what is left of
# DEADLINE seconds (from the start) and is skipped, saying so, when too little is left, so
# the summary is always written.
DEADLINE=${DEADLINE:-540}
left() { echo $((DEADLINE - SECONDS)); }
fits() { [ "$(left)" -gt "$1" ]; }
cap() { local l=$(($(left) - 15)); [ "$l" -lt 1 ] && l=1; echo $(($1 < l ? $1 : l)); }

# --- the device ---
have_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && nvidia-smi -L | grep -q '^GPU'; then
  have_gpu=1
  { nvidia-smi; echo; nvidia-smi -L; nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv; } \
    >"$OUT/device.txt" 2>&1 || true
else
  echo "no GPU: $(command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>&1 | head -1 || echo 'nvidia-smi not found')" \
    >"$OUT/device.txt"
fi
{ echo; command -v nvcc >/dev/null && nvcc --version | tail -2; cmake --version | head -1; } >>"$OUT/device.txt" 2>&1 || true
JOBS=${JOBS:-$([ "$have_gpu" = 1 ] && nproc || echo 2)}

# --- build ---
# CMake < 3.26 knows no C++20 flag for nvcc (CMAKE_CUDA_STANDARD 20 fails to generate); the
# two cache entries supply it and are ignored by newer CMake.
# The GPU suites first (what the device time is for), then everything else: a break elsewhere
# is reported as a failure but does not cost the session its GPU results.
build_rc=0
rest_rc=0
{
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_CUDA_ARCHITECTURES="$ARCHS" \
    -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20 &&
    cmake --build "$BUILD_DIR" -j"$JOBS" --target graft_gpu_tests
} >"$OUT/build.log" 2>&1 || build_rc=$?
if [ "$build_rc" = 0 ]; then
  cmake --build "$BUILD_DIR" -j"$JOBS" >>"$OUT/build.log" 2>&1 || rest_rc=$?
fi
if [ "$build_rc" != 0 ]; then
  tail -40 "$OUT/build.log" || true
  say "device-check: BUILD FAILED (rc $build_rc), see $OUT/build.log"
  exit 1
fi
if [ ! -x "$BUILD_DIR/tests/graft_gpu_tests" ]; then
  say "device-check: the build has no graft_gpu_tests (CUDA backend off?): see $OUT/build.log"
  exit 1
fi

# --- GPU suites ---
tests_rc=0
timeout "$(cap 300)" ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure >"$OUT/gpu-tests.log" 2>&1 || tests_rc=$?
total=$(grep -Eo 'tests passed, [0-9]+ tests failed out of [0-9]+' "$OUT/gpu-tests.log" | grep -Eo '[0-9]+$' || echo 0)
failed=$(grep -Eo '[0-9]+ tests failed out of' "$OUT/gpu-tests.log" | grep -Eo '^[0-9]+' || echo 0)
skipped=$(grep -Ec '\(Skipped\)' "$OUT/gpu-tests.log" || true)
skip_reason=""
if [ "$skipped" != 0 ]; then  # ctest hides a skipped test's output: ask one test why
  skip_reason=$("$BUILD_DIR/tests/graft_gpu_tests" --gtest_filter=DevicePoolGpu.NoCudaMallocAfterWarmUp 2>&1 |
    grep -m1 -Eo 'no CUDA device: .*' || true)
fi
passed=$((total - failed - skipped))

# --- memcheck over a few small tests ---
memcheck="not run"
if [ "$have_gpu" = 1 ] && ! fits 120; then
  memcheck="skipped ($(left) s left of DEADLINE=$DEADLINE)"
elif [ "$have_gpu" = 1 ] && [ "$MEMCHECK" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  filter='ElementwiseGpu.*:LossGpu.*:OptimizerGpu.Sgd:PoolGpu.Native*:DenseGpu.NativeBackward:DevicePoolGpu.NoCudaMallocAfterWarmUp'
  filter+=':TensorCoreGpu.SmallAndOddShapesAllEpilogues:TensorCoreGpu.MisalignedOperandsTakeTheElementWisePath:TensorCoreGpu.ConversionsMatchTheCpuBitForBit'
  if timeout "$(cap 300)" compute-sanitizer --tool memcheck --error-exitcode 99 \
    "$BUILD_DIR/tests/graft_gpu_tests" --gtest_filter="$filter" >"$OUT/memcheck.log" 2>&1; then
    memcheck="clean ($(grep -m1 -Eo 'ERROR SUMMARY: [0-9]+ errors?' "$OUT/memcheck.log" || echo 'no summary'))"
  else
    memcheck="FAILED (rc $?; see $OUT/memcheck.log)"
  fi
elif [ "$have_gpu" = 1 ]; then
  memcheck="skipped (MEMCHECK=$MEMCHECK, compute-sanitizer $(command -v compute-sanitizer >/dev/null && echo found || echo missing))"
fi

# --- racecheck (shared-memory hazards) over the kernels that use shared memory ---
racecheck="not run"
if [ "$have_gpu" = 1 ] && ! fits 100; then
  racecheck="skipped ($(left) s left of DEADLINE=$DEADLINE)"
elif [ "$have_gpu" = 1 ] && [ "$MEMCHECK" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  filter='ConvGpu.Native*:DenseGpu.Native*:LossGpu.*:PoolGpu.Native*:TensorCoreGpu.SmallAndOddShapesAllEpilogues'
  if timeout "$(cap 240)" compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 99 \
    "$BUILD_DIR/tests/graft_gpu_tests" --gtest_filter="$filter" >"$OUT/racecheck.log" 2>&1; then
    racecheck="clean ($(grep -m1 -Eo 'RACECHECK SUMMARY: [0-9]+ hazards?[^)]*' "$OUT/racecheck.log" || echo 'no summary'))"
  else
    racecheck="FAILED (rc $?; see $OUT/racecheck.log)"
  fi
fi

# --- end to end on the device: the demo's first stage (Fashion-MNIST classes 0-4), one epoch ---
train_gpu="not run"
if [ "$have_gpu" = 1 ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  train_gpu="skipped (no Fashion-MNIST under /usr/share/datasets/fashion-mnist)"
elif [ "$have_gpu" = 1 ] && ! fits 60; then
  train_gpu="skipped ($(left) s left of DEADLINE=$DEADLINE)"
elif [ "$have_gpu" = 1 ] && [ -x "$BUILD_DIR/graft" ]; then
  if timeout "$(cap 300)" "$BUILD_DIR/graft" train --device cuda --model fmnist_cnn --data fashion-mnist --classes 0-4 \
    --epochs 1 --batch 64 --progress off --seed 1 >"$OUT/train-cuda.log" 2>&1; then
    train_gpu="ok ($(grep -m1 -Eo 'loss [0-9.]+ +acc [0-9.]+%' "$OUT/train-cuda.log" || echo 'no epoch line'))"
  else
    train_gpu="FAILED (rc $?; see $OUT/train-cuda.log)"
  fi
fi

# --- quick benchmarks: graft bench (native and library) beside PyTorch eager, vgg16 frozen ---
# The full comparison (bf16, resnet50, torch.compile) is bench/compare.sh's own device call.
bench="not run"
if [ "$have_gpu" = 1 ] && [ -x "$BUILD_DIR/graft" ] && [ "${BENCH:-1}" = 1 ]; then
  for k in native library; do
    timeout "$(cap 120)" "$BUILD_DIR/graft" bench --device cuda --kernels "$k" --model vgg16 --input 224 --batch 64 \
      --mode frozen --steps 20 --warmup 5 --json >"$OUT/bench-vgg16-frozen-fp32-$k.json" 2>"$OUT/bench-$k.err" || true
  done
  # The frozen base in chunks (auto: 4 x 16) against whole batches: the peak-memory target.
  timeout "$(cap 120)" "$BUILD_DIR/graft" bench --device cuda --kernels library --model vgg16 --input 224 --batch 64 \
    --mode frozen --frozen-chunk off --steps 20 --warmup 5 --json >"$OUT/bench-vgg16-frozen-fp32-library-nochunk.json" \
    2>>"$OUT/bench-library.err" || true
  # bf16: cuDNN/cuBLAS on bf16 tensor cores (library), and the emulation on the native kernels.
  timeout "$(cap 120)" "$BUILD_DIR/graft" bench --device cuda --kernels library --model vgg16 --input 224 --batch 64 \
    --mode frozen --precision bf16 --steps 20 --warmup 5 --json >"$OUT/bench-vgg16-frozen-bf16-library.json" \
    2>>"$OUT/bench-library.err" || true
  timeout "$(cap 60)" "$BUILD_DIR/graft" bench --device cuda --kernels native --model vgg16 --input 224 --batch 64 \
    --mode frozen --precision bf16 --steps 5 --warmup 2 --json >"$OUT/bench-vgg16-frozen-bf16emu-native.json" \
    2>>"$OUT/bench-native.err" || true
  # Step graphs where launches matter most: head-only steps on cached features, on and off.
  for g in on off; do
    timeout "$(cap 45)" "$BUILD_DIR/graft" bench --device cuda --kernels library --model vgg16 --input 224 --batch 64 \
      --mode cached --cuda-graphs "$g" --steps 50 --warmup 10 --json >"$OUT/bench-vgg16-cached-graphs-$g.json" \
      2>>"$OUT/bench-library.err" || true
  done
  # --kernels auto: which layers the hand-written kernels win (chosen_kernels in the JSON).
  timeout "$(cap 90)" "$BUILD_DIR/graft" bench --device cuda --kernels auto --model vgg16 --input 224 --batch 64 \
    --mode frozen --steps 10 --warmup 3 --json >"$OUT/bench-vgg16-frozen-fp32-auto.json" 2>"$OUT/bench-auto.err" || true
  # The hand-written bf16 tensor-core GEMM against cuBLASLt (the card's bf16 matrix peak too).
  [ -x "$BUILD_DIR/graft_tc_gemm_bench" ] && timeout "$(cap 120)" "$BUILD_DIR/graft_tc_gemm_bench" >"$OUT/tc-gemm.jsonl" \
    2>"$OUT/tc-gemm.err" || true
  # Every vgg16 layer, forward and backward, native beside library (the conv-vs-cuDNN target).
  timeout "$(cap 150)" "$BUILD_DIR/graft" bench --device cuda --kernels library --model vgg16 --input 224 --batch 64 \
    --mode full --steps 5 --warmup 2 --layers --json >"$OUT/bench-vgg16-full-layers.json" 2>"$OUT/bench-layers.err" || true
  GRAFT="$BUILD_DIR/graft" OUT="$OUT/compare" BENCH_MODELS=vgg16 BENCH_MODES=frozen BENCH_PRECISIONS="bf16 fp32" \
    BENCH_IMPLS=eager BENCH_GEMM_DTYPES="fp32 tf32 bf16" BENCH_STEPS=20 BENCH_WARMUP=5 BENCH_DEADLINE=200 \
    timeout "$(cap 240)" bash bench/compare.sh >"$OUT/compare.log" 2>&1 || true
  bench="see $OUT/compare.log: $(grep -E '^vgg16 +frozen' "$OUT/compare.log" | tr -s ' ' | cut -c1-100 | tr '\n' ';' || echo 'no table row')"
fi

# --- summary (last) ---
say "=== graft device check ==="
say "device:    $(head -1 "$OUT/device.txt" 2>/dev/null | cut -c1-120)"
if [ "$have_gpu" = 1 ]; then
  say "device:    $(grep -A1 '^name, compute_cap' "$OUT/device.txt" | tail -1 || true)"
fi
if [ "$rest_rc" = 0 ]; then
  say "build:     ok ($BUILD_DIR, sm_$ARCHS, -j$JOBS)"
else
  say "build:     GPU suites built; the rest FAILED (rc $rest_rc): $(grep -m1 -E '^FAILED: ' "$OUT/build.log" | cut -c1-150)"
fi
say "gpu tests: $total total, $passed passed, $failed failed, $skipped skipped (ctest rc $tests_rc)"
[ -n "$skip_reason" ] && say "           skipped because: $skip_reason"
say "memcheck:  $memcheck"
say "racecheck: $racecheck"
say "train gpu: $train_gpu"
say "bench:     $bench"
say "logs:      $OUT"

status=0
if [ "$tests_rc" != 0 ] || [ "$failed" != 0 ]; then
  grep -E '^\s*[0-9]+ - .*\((Failed|SEGFAULT|Timeout|Exception|Not Run|Subprocess aborted)' "$OUT/gpu-tests.log" | tee -a "$OUT/summary.txt" || true
  say "RESULT: FAIL (GPU tests failed)"
  status=1
elif [ "$have_gpu" = 1 ] && [ "$skipped" != 0 ]; then
  say "RESULT: FAIL (a GPU is present but $skipped GPU tests skipped)"
  status=1
elif [ "$rest_rc" != 0 ]; then
  say "RESULT: FAIL (build of the non-GPU targets failed, see $OUT/build.log)"
  status=1
elif [[ "$train_gpu" == FAILED* ]]; then
  say "RESULT: FAIL (graft train --device cuda)"
  status=1
elif [[ "$memcheck" == FAILED* ]]; then
  say "RESULT: FAIL (memcheck)"
  status=1
elif [[ "$racecheck" == FAILED* ]]; then
  say "RESULT: FAIL (racecheck)"
  status=1
elif [ "$have_gpu" = 0 ]; then
  say "RESULT: OK (built; no GPU here, so the GPU tests were skipped, not passed)"
else
  say "RESULT: OK"
fi
exit $status
