#!/usr/bin/env bash
# One prepared run on a lent GPU machine (docs/gpu-runs.md says how to call it):
#   OUT=$OUT bash tools/gpu-run.sh 1   every GPU suite, compute-sanitizer memcheck and racecheck,
#                                      a CUDA training epoch (native and library kernels), the
#                                      demo's GPU stage, the reference recipe (vgg16, 2 epochs)
#   OUT=$OUT bash tools/gpu-run.sh 2   benchmarks: graft bench rows, bench/compare.sh against the
#                                      machine's own PyTorch, the tensor-core GEMM bench
# The binaries come from the kit (.gpu-kit/, tools/gpu-kit.sh) when they can run here; else
# the run builds from the carried sources with the kit's prefix (build-gpu-run/) and says why:
# a kit from another tree, a library the image lacks, another compute capability. A CUDA
# library that is missing altogether stops the run with one line naming it and where it was
# looked for. Without a GPU it checks what it can (kit, libraries, the test binary loads and
# skips, the training commands on the CPU) and says what it skipped.
# Prints a summary table last (also $OUT/summary.txt); every log goes into one archive,
# $OUT/run<N>-logs.tar.gz. Exit status 0 only when nothing failed.
# Environment: OUT (/tmp/graft-gpu-run), KIT (.gpu-kit), DEADLINE (seconds for the whole run:
# 330 for run 1, 420 for run 2), FROM_SOURCE=1 (ignore the kit), GRAFT_CUDA_LIBS (more folders
# with libcudnn/libcublas/libnccl, colon-separated), JOBS (nproc), PLAN_ONLY=1 (stop after saying
# which binaries the run would use), SKIP (stages to leave out when time is short, e.g.
# SKIP="racecheck demo"; run 1: gpu-tests memcheck racecheck train demo recipe; run 2: bench gemm
# compare; bench/compare.sh's BENCH_* variables pass through, e.g. BENCH_IMPLS=eager).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
RUN=${1:-}
case "$RUN" in 1|2) ;; *) echo "usage: OUT=DIR bash tools/gpu-run.sh 1|2" >&2; exit 2;; esac
OUT=${OUT:-/tmp/graft-gpu-run}
KIT=${KIT:-$ROOT/.gpu-kit}
[ "$RUN" = 1 ] && DEADLINE=${DEADLINE:-330} || DEADLINE=${DEADLINE:-420}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$OUT" || exit 2
LOGS=$(mktemp -d /tmp/graft-run$RUN-logs.XXXXXX)
ROWS=$LOGS/rows.txt  # the summary table, "stage|state|detail" a line (stages run in background jobs too)
: >"$ROWS"
row() { echo "$1|$2|$3" >>"$ROWS"; printf '%-12s %-8s %s\n' "$1" "$2" "$3"; }
left() { echo $((DEADLINE - SECONDS)); }
cap() { local l=$(($(left) - 10)); [ "$l" -lt 5 ] && l=5; echo $(($1 < l ? $1 : l)); }  # a stage's timeout
skipped() { [[ " ${SKIP:-} " == *" $1 "* ]]; }  # skipped STAGE: named in $SKIP

finish() {  # the table, last, and the archive
  local status=0
  grep -q '^[^|]*|FAIL' "$ROWS" && status=1
  {
    echo
    echo "=== graft GPU run $RUN: $(date -u +%Y-%m-%dT%H:%M:%SZ), ${SECONDS}s of DEADLINE=${DEADLINE}s ==="
    while IFS='|' read -r a b c; do printf '%-12s %-8s %s\n' "$a" "$b" "$c"; done <"$ROWS"
    [ -s "$LOGS/compare-table.txt" ] && cat "$LOGS/compare-table.txt"
    if [ "$status" != 0 ]; then echo "RESULT: FAIL"
    elif [ "${have_gpu:-0}" = 1 ]; then echo "RESULT: OK"
    else echo "RESULT: OK (no GPU here: the GPU stages were skipped, not passed)"; fi
  } | tee "$OUT/summary.txt"
  cp "$OUT/summary.txt" "$LOGS/summary.txt"
  tar -C "$LOGS" -czf "$OUT/run$RUN-logs.tar.gz" . && echo "logs: $OUT/run$RUN-logs.tar.gz ($(du -h "$OUT/run$RUN-logs.tar.gz" | cut -f1))"
  rm -rf "$LOGS"
  exit "$status"
}

# --- the device ---
have_gpu=0
gpu_cap=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  have_gpu=1
  nvidia-smi >"$LOGS/nvidia-smi.txt" 2>&1
  gpu=$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
  gpu_cap=$(cut -d, -f2 <<<"$gpu" | tr -d ' ')
  row device ok "$gpu"
else
  row device none "no GPU ($(command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>&1 | head -1 || echo 'no nvidia-smi')): a dry run"
fi
{ uname -a; [ -r /etc/os-release ] && . /etc/os-release && echo "$PRETTY_NAME"; ldd --version | head -1
  command -v nvcc >/dev/null && nvcc --version | tail -1; cmake --version 2>/dev/null | head -1; g++ --version 2>/dev/null | head -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1
} >"$LOGS/machine.txt" 2>&1

# --- the CUDA libraries: the image's pip wheels (site-packages/nvidia/*/lib), the toolkit ---
lib_dirs=()
IFS=: read -r -a extra <<<"${GRAFT_CUDA_LIBS:-}"
for d in "${extra[@]}"; do [ -d "$d" ] && lib_dirs+=("$d"); done
while IFS= read -r d; do lib_dirs+=("$d"); done < <(python3 -c '
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit
for root in nvidia.__path__:
    for d in sorted(glob.glob(os.path.join(root, "*", "lib"))):
        print(d)' 2>/dev/null)
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && lib_dirs+=("$d"); done
lib_path=$(IFS=:; echo "${lib_dirs[*]}")
export LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
printf '%s\n' "${lib_dirs[@]}" >"$LOGS/cuda-lib-dirs.txt"
[ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null && export PATH=/usr/local/cuda/bin:$PATH

# --- the binaries: the kit's, or built here ---
why_source=""
if [ "${FROM_SOURCE:-0}" = 1 ]; then
  why_source="FROM_SOURCE=1"
elif [ ! -x "$KIT/bin/graft" ]; then
  why_source="no kit at $KIT (tools/gpu-kit.sh makes it; carry .gpu-kit)"
else
  tools/gpu-sources.sh >"$LOGS/sources.now.sha1"
  changed=$(diff <(cat "$KIT/sources.sha1") "$LOGS/sources.now.sha1" | sed -n 's/^[<>] [0-9a-f]*  //p' | sort -u)
  if [ -n "$changed" ]; then
    why_source="the kit was built from another tree ($(sed -n 's/^commit: //p' "$KIT/MANIFEST")): $(wc -l <<<"$changed") source files differ, e.g. $(head -3 <<<"$changed" | tr '\n' ' ')"
  fi
  for b in "$KIT"/bin/*; do { echo "== ldd $b"; ldd "$b" 2>&1; } | tee -a "$LOGS/ldd.txt"; done
  missing=$(grep -Eo '^\s*\S+ => not found' "$LOGS/ldd.txt" | awk '{print $1}' | sort -u | tr '\n' ' ')
  if grep -Eq 'lib(cudnn|cublas|cublasLt|cudart)' <<<"$missing"; then
    row libraries FAIL "not found: ${missing}looked in: ${lib_path:-nothing} (pip wheels nvidia-cudnn-cu13 and nvidia-cublas, or set GRAFT_CUDA_LIBS)"
    finish
  elif [ -n "$missing" ]; then
    [ -z "$why_source" ] && why_source="the kit's binaries need $missing, which this image lacks"
  elif ! "$KIT/bin/graft" --version >"$LOGS/kit-version.txt" 2>&1; then
    [ -z "$why_source" ] && why_source="the kit's graft does not start here: $(grep -v '^$' "$LOGS/kit-version.txt" | tail -1)"
  fi
  kit_archs=$(sed -n 's/^archs: //p' "$KIT/MANIFEST")
  if [ -z "$why_source" ] && [ -n "$gpu_cap" ] && ! tr ';' '\n' <<<"$kit_archs" | grep -q "^${gpu_cap/./}"; then
    why_source="the kit has code for $kit_archs; this device has compute capability $gpu_cap"
  fi
fi

if [ "${PLAN_ONLY:-0}" = 1 ]; then  # say which binaries a run would use, and why; run nothing
  row binaries plan "${why_source:+would build from source: }${why_source:-the kit}"
  finish
fi
if [ -z "$why_source" ]; then
  BIN=$KIT/bin
  GRAFT=$BIN/graft
  TESTS=$BIN/graft_gpu_tests
  GEMM_BENCH=$BIN/graft_tc_gemm_bench
  row binaries kit "$(sed -n 's/^commit: //p' "$KIT/MANIFEST"); $(sed -n 's/^archs: //p' "$KIT/MANIFEST"); libraries resolved (ldd)"
else
  echo "building from source: $why_source"
  archs=${gpu_cap/./}
  archs=${archs:-90}-real
  prefix=()
  [ -d "$KIT/prefix" ] && prefix=("-DCMAKE_PREFIX_PATH=$KIT/prefix")
  gen=Ninja
  command -v ninja >/dev/null || gen="Unix Makefiles"
  t0=$SECONDS
  brc=0
  cmake -S . -B build-gpu-run -G "$gen" -DCMAKE_BUILD_TYPE=Release -DGRAFT_WERROR=OFF -DGRAFT_OPENBLAS=OFF -DGRAFT_MPI=OFF \
    "-DGRAFT_CUDA_ARCHITECTURES=$archs" "${prefix[@]}" >"$LOGS/build.log" 2>&1 || brc=$?
  if [ "$brc" = 0 ] && ! grep -q "graft: CUDA backend ON" "$LOGS/build.log"; then brc=1; fi
  if [ "$brc" = 0 ]; then
    timeout "$(cap 400)" cmake --build build-gpu-run -j"$JOBS" --target graft_gpu_tests graft graft_tc_gemm_bench \
      >>"$LOGS/build.log" 2>&1 || brc=$?
  fi
  if [ "$brc" = 0 ]; then
    row binaries built "from source in $((SECONDS - t0)) s, sm_$archs, $(grep -m1 -o 'NCCL O[NF]F*' "$LOGS/build.log" || echo 'NCCL ?'): $why_source"
  else
    tail -30 "$LOGS/build.log"
    case $brc in
      124|137) what="timed out after $((SECONDS - t0)) s (DEADLINE=$DEADLINE)";;
      *) what=$(grep -m1 -E 'error|Error|CUDA backend OFF|CUDA found but not' "$LOGS/build.log" | cut -c1-200);;
    esac
    row binaries FAIL "the build from source failed ($why_source): $what"
    finish
  fi
  BIN=$ROOT/build-gpu-run
  GRAFT=$BIN/graft
  TESTS=$BIN/tests/graft_gpu_tests
  GEMM_BENCH=$BIN/graft_tc_gemm_bench
fi
"$GRAFT" --version >"$LOGS/graft-version.txt" 2>&1
row libraries ok "$(sed -n 2p "$LOGS/graft-version.txt")"
DATA=$KIT/data/fashion-mnist
[ -d "$DATA" ] || DATA=/usr/share/datasets/fashion-mnist

# --- run 1 ---
# gtest_group NAME FILTER: one test process; its counts go to the summary. A crash or a
# timeout loses only this group's remaining tests.
gtest_group() {
  local name=$1 filter=$2 log=$LOGS/gpu-tests-$1.log
  timeout --kill-after=10 "$(cap 240)" "$TESTS" --gtest_filter="$filter" --gtest_color=no >"$log" 2>&1
  echo $? >"$log.rc"
}
summarize_tests() {
  local p=0 f=0 s=0 crashed="" failed_names="" log n
  for log in "$LOGS"/gpu-tests-*.log; do
    n=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$log"); p=$((p + ${n:-0}))
    n=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\?,.*/\1/p' "$log"); s=$((s + ${n:-0}))
    n=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?,.*/\1/p' "$log"); f=$((f + ${n:-0}))
    failed_names+=$(sed -n 's/^\[  FAILED  \] \([A-Za-z0-9_]*\.[A-Za-z0-9_/]*\).*/\1 /p' "$log" | sort -u | tr -d '\n')
    if ! grep -q '^\[==========\] .* ran\.' "$log"; then
      crashed+="$(basename "$log" .log) (rc $(cat "$log.rc"), in $(grep '^\[ RUN      \]' "$log" | tail -1 | awk '{print $NF}')) "
    fi
  done
  local detail="$p passed, $f failed, $s skipped${crashed:+; crashed: $crashed}${failed_names:+; failed: $failed_names}"
  if [ -n "$crashed" ] || [ "$f" != 0 ]; then row "gpu tests" FAIL "$detail"
  elif [ "$have_gpu" = 1 ] && [ "$s" != 0 ]; then
    row "gpu tests" FAIL "$detail: a GPU is here, yet tests skipped ($(grep -h -m1 -o 'no CUDA device[^"]*' "$LOGS"/gpu-tests-*.log | head -1))"
  elif [ "$have_gpu" = 0 ]; then row "gpu tests" skipped "$detail (no GPU: the binary loads, lists its tests and skips them)"
  else row "gpu tests" ok "$detail"; fi
}
sanitizer() {  # sanitizer TOOL FILTER EXTRA...
  local tool=$1 filter=$2; shift 2
  if skipped "$tool"; then row "$tool" skipped "SKIP"; return; fi
  if [ "$have_gpu" = 0 ]; then row "$tool" skipped "no GPU"; return; fi
  if ! command -v compute-sanitizer >/dev/null; then row "$tool" FAIL "compute-sanitizer not found"; return; fi
  if [ "$(left)" -lt 60 ]; then row "$tool" skipped "$(left) s left of DEADLINE=$DEADLINE"; return; fi
  local rc=0
  timeout --kill-after=10 "$(cap 240)" compute-sanitizer --tool "$tool" "$@" --error-exitcode 99 "$TESTS" \
    --gtest_filter="$filter" --gtest_color=no >"$LOGS/$tool.log" 2>&1 || rc=$?
  local summary
  summary=$(grep -m1 -Eo '(ERROR|RACECHECK) SUMMARY: .*' "$LOGS/$tool.log")
  case $rc in
    0) row "$tool" ok "clean: ${summary:-no summary line}";;
    124|137) row "$tool" FAIL "timed out: ${summary:-see $tool.log}";;
    *) row "$tool" FAIL "rc $rc: ${summary:-$(tail -1 "$LOGS/$tool.log")}";;
  esac
}
train_epoch() {  # train_epoch KERNELS: one epoch of the demo's pretraining on the device
  local k=$1 device=cuda note=""
  if skipped train; then row "train $k" skipped "SKIP"; return; fi
  if [ "$have_gpu" = 0 ]; then device=cpu; note=" (no GPU: on the CPU, to check the command)"; fi
  if "$GRAFT" train --device "$device" --kernels "$k" --model fmnist_cnn --data fashion-mnist --data-dir "$DATA" \
       --classes 0-4 --epochs 1 --batch 64 --progress off --seed 1 --save "$LOGS/train-$k.safetensors" \
       >"$LOGS/train-$k.log" 2>&1; then
    row "train $k" ok "$(grep -m1 -Eo 'loss [0-9.]+ +acc [0-9.]+%.*' "$LOGS/train-$k.log" | cut -c1-90)$note"
  else
    row "train $k" FAIL "rc $?: $(tail -1 "$LOGS/train-$k.log")"
  fi
  rm -f "$LOGS/train-$k.safetensors"
}
demo_stage() {
  local env=(GRAFT="$GRAFT" DEMO_DATA_DIR="$DATA" DEMO_OUT="$LOGS/demo" DEMO_DEVICE=cuda) note=""
  if skipped demo; then row demo skipped "SKIP"; return; fi
  if [ "$have_gpu" = 0 ]; then
    env=(GRAFT="$GRAFT" DEMO_DATA_DIR="$DATA" DEMO_OUT="$LOGS/demo" DEMO_DEVICE=cpu DEMO_EPOCHS=1 DEMO_PRETRAIN_EPOCHS=1)
    note=" (no GPU: 1 epoch on the CPU, to check the commands)"
  fi
  if env "${env[@]}" timeout --kill-after=10 "$(cap 200)" bash tools/demo.sh >"$LOGS/demo.log" 2>&1; then
    row demo ok "K=10 $(awk '$1=="10"{print "scratch " $2 ", frozen base " $3}' "$LOGS/demo.log"); K=50 $(awk '$1=="50"{print "scratch " $2 ", frozen base " $3}' "$LOGS/demo.log")$note"
  else
    row demo FAIL "rc $?: $(tail -1 "$LOGS/demo.log")"
  fi
  rm -f "$LOGS"/demo/*.safetensors
}
# The reference recipe (docs/recipes.md) on an image folder of a few hundred JPEGs written
# here (tools/make-image-folder.py; the machine's Python has Pillow): vgg16 at 224, frozen
# base, Flatten-1024-N head, Keras augmentation on the device, Adam, 2 epochs.
recipe_stage() {
  if skipped recipe; then row recipe skipped "SKIP"; return; fi
  local py="" c
  for c in python3 /usr/bin/python3; do "$c" -c 'import PIL' 2>/dev/null && { py=$c; break; }; done
  if [ -z "$py" ]; then row recipe skipped "no python3 with Pillow to write the JPEGs"; return; fi
  if ! "$py" tools/make-image-folder.py "$LOGS/images" --classes 3 --train 100 --val 20 --seed 1 >"$LOGS/recipe-images.log" 2>&1; then
    row recipe FAIL "writing the image folder: $(tail -1 "$LOGS/recipe-images.log")"; return
  fi
  local args=(--model vgg16 --input 224 --epochs 2 --device cuda --augment-on device) note=""
  if [ "$have_gpu" = 0 ]; then
    args=(--model vgg11 --input 32 --epochs 1 --device cpu --augment-on cpu)
    note=" (no GPU: vgg11 at 32 px on the CPU, to check the command)"
  fi
  if timeout --kill-after=10 "$(cap 180)" "$GRAFT" train "${args[@]}" --normalize unit --head 'flatten,dense:1024,relu,dense:3' \
       --freeze 'features.*' --data "$LOGS/images/train" --val "$LOGS/images/val" --shear 0.2 --zoom 0.2 --hflip \
       --optimizer adam --lr 0.001 --batch 32 --progress off --seed 1 >"$LOGS/recipe.log" 2>&1; then
    row recipe ok "${args[1]}, 300 JPEGs: $(grep -E 'loss [0-9.]+ +acc' "$LOGS/recipe.log" | tail -1 | tr -s ' ' | cut -c1-110)$note"
  else
    row recipe FAIL "rc $?: $(tail -1 "$LOGS/recipe.log")"
  fi
  rm -rf "$LOGS/images"
}

if [ "$RUN" = 1 ] && skipped gpu-tests; then row "gpu tests" skipped "SKIP"; fi
if [ "$RUN" = 1 ] && ! skipped gpu-tests; then
  # Every GPU suite, in four processes at once (each loads cuDNN once).
  mapfile -t suites < <("$TESTS" --gtest_list_tests 2>/dev/null | grep -Eo '^[A-Za-z0-9_]+\.' | sort -u)
  if [ "${#suites[@]}" = 0 ]; then
    "$TESTS" --gtest_list_tests >"$LOGS/list.log" 2>&1
    row "gpu tests" FAIL "the test binary lists no tests: $(tail -1 "$LOGS/list.log")"
  else
    for g in 0 1 2 3; do
      filter=""
      for i in "${!suites[@]}"; do [ $((i % 4)) = "$g" ] && filter+="${suites[$i]}*:"; done
      [ -n "$filter" ] && gtest_group "g$g" "${filter%:}" &
    done
    wait
    summarize_tests
  fi
fi
if [ "$RUN" = 1 ]; then
  # The sanitizers on small filters, beside the training checks.
  sanitizer memcheck 'ElementwiseGpu.*:LossGpu.*:OptimizerGpu.Sgd:PoolGpu.Native*:DenseGpu.NativeBackward:DevicePoolGpu.NoCudaMallocAfterWarmUp:TensorCoreGpu.SmallAndOddShapesAllEpilogues:TensorCoreGpu.MisalignedOperandsTakeTheElementWisePath:TensorCoreGpu.ConversionsMatchTheCpuBitForBit:SequenceGpu.NativeEmbeddingBackwardIsDeterministic:SequenceGpu.NativePooling' &
  sanitizer racecheck 'ConvGpu.Native*:DenseGpu.Native*:LossGpu.*:PoolGpu.Native*:TensorCoreGpu.SmallAndOddShapesAllEpilogues:SequenceGpu.NativeEmbeddingBackwardIsDeterministic:BatchNormGpu.*' --racecheck-report hazard &
  { train_epoch native; train_epoch library; demo_stage; recipe_stage; } &
  wait
fi

# --- run 2 ---
bench() {  # bench NAME FLAGS...: one graft bench row (JSON in the logs)
  local name=$1; shift
  if skipped bench; then return; fi
  if [ "$(left)" -lt 30 ]; then row "$name" skipped "$(left) s left of DEADLINE=$DEADLINE"; return; fi
  if timeout --kill-after=10 "$(cap 120)" "$GRAFT" bench "$@" --json >"$LOGS/bench-$name.json" 2>"$LOGS/bench-$name.err"; then
    row "$name" ok "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.0f img/s, %.2f ms/step, peak %.0f MiB" % (j["images_per_second"], j["ms_per_step"]["p50"], (j.get("peak_bytes") or 0) / 2**20))' "$LOGS/bench-$name.json" 2>/dev/null)"
  else
    row "$name" FAIL "rc $?: $(tail -1 "$LOGS/bench-$name.err")"
  fi
}
if [ "$RUN" = 2 ]; then
  if [ "$have_gpu" = 1 ]; then
    on=(--device cuda --model vgg16 --input 224 --batch 64 --mode frozen --steps 20 --warmup 5)
    bench native-fp32 "${on[@]}" --kernels native
    bench lib-fp32 "${on[@]}" --kernels library
    bench lib-nochunk "${on[@]}" --kernels library --frozen-chunk off
    bench lib-bf16 "${on[@]}" --kernels library --precision bf16
    bench auto-fp32 "${on[@]}" --kernels auto
    bench graphs-on --device cuda --model vgg16 --input 224 --batch 64 --mode cached --steps 50 --warmup 10 --kernels library --cuda-graphs on
    bench graphs-off --device cuda --model vgg16 --input 224 --batch 64 --mode cached --steps 50 --warmup 10 --kernels library --cuda-graphs off
    bench layers-full --device cuda --model vgg16 --input 224 --batch 64 --mode full --steps 5 --warmup 2 --kernels library --layers
    if skipped gemm; then row "tc gemm" skipped "SKIP"
    elif timeout "$(cap 120)" "$GEMM_BENCH" >"$LOGS/tc-gemm.jsonl" 2>"$LOGS/tc-gemm.err"; then
      row "tc gemm" ok "$(wc -l <"$LOGS/tc-gemm.jsonl") rows in tc-gemm.jsonl"
    else row "tc gemm" FAIL "rc $?: $(tail -1 "$LOGS/tc-gemm.err")"; fi
    compare_env=(BENCH_MODELS="${BENCH_MODELS:-vgg16 resnet50}" BENCH_MODES="${BENCH_MODES:-frozen full}"
                 BENCH_PRECISIONS="${BENCH_PRECISIONS:-fp32 bf16}" BENCH_IMPLS="${BENCH_IMPLS:-eager compile}"
                 BENCH_STEPS="${BENCH_STEPS:-20}" BENCH_WARMUP="${BENCH_WARMUP:-5}")
  else
    bench cpu-dry --device cpu --model vgg11 --input 32 --batch 2 --mode frozen --steps 2 --warmup 1
    compare_env=(BENCH_DEVICE=cpu BENCH_MODELS=vgg11 BENCH_MODES=frozen BENCH_PRECISIONS=fp32 BENCH_INPUT=32 BENCH_BATCH=2
                 BENCH_STEPS=2 BENCH_WARMUP=1 BENCH_IMPLS=eager BENCH_GEMM=256 BENCH_GEMM_DTYPES=fp32)
  fi
  have_torch=0
  for py in ${PYTHON:-python3 /usr/bin/python3}; do "$py" -c 'import torch, torchvision' 2>/dev/null && have_torch=1 && break; done
  if skipped compare; then
    row compare skipped "SKIP"
  elif [ "$have_torch" = 0 ] && [ "$have_gpu" = 0 ]; then
    row compare skipped "no python3 with torch and torchvision here (the GPU image has them)"
  elif [ "$(left)" -gt 40 ]; then
    env "${compare_env[@]}" GRAFT="$GRAFT" OUT="$LOGS/compare" BENCH_DEADLINE=$(($(left) - 25)) \
      timeout --kill-after=10 "$(cap 600)" bash bench/compare.sh >"$LOGS/compare.log" 2>&1
    rc=$?
    table=$(sed -n '/^device: /,/^results: /p' "$LOGS/compare.log" | head -30)
    if [ "$rc" = 0 ] && [ -n "$table" ]; then row compare ok "table below and in compare.log"
    else row compare FAIL "rc $rc: $(tail -2 "$LOGS/compare.log" | tr '\n' ' ')"; fi
    [ -n "$table" ] && printf '%s\n' "$table" >"$LOGS/compare-table.txt"
  else
    row compare skipped "$(left) s left of DEADLINE=$DEADLINE"
  fi
fi
finish
