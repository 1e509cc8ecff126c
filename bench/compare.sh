#!/usr/bin/env bash
# graft bench vs the PyTorch baseline, in one go (one device call), plus the card's matrix peak.
# Writes every result as JSON under $OUT, logs under $OUT/logs, and prints a table of ratios last.
# See bench/README.md. Dry run on a CPU:
#   BENCH_DEVICE=cpu BENCH_MODELS=vgg11 BENCH_INPUT=32 BENCH_BATCH=2 BENCH_STEPS=2 OUT=/tmp/bench bash bench/compare.sh
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT" || exit 2

OUT=${OUT:-/tmp/graft-bench}
MODELS=${BENCH_MODELS:-vgg16 resnet50}
MODES=${BENCH_MODES:-frozen full}
PRECISIONS=${BENCH_PRECISIONS:-fp32 bf16}
INPUT=${BENCH_INPUT:-224}
BATCH=${BENCH_BATCH:-64}
STEPS=${BENCH_STEPS:-50}
WARMUP=${BENCH_WARMUP:-10}
CLASSES=${BENCH_CLASSES:-10}
DEVICE=${BENCH_DEVICE:-}                 # empty: each program's default (cuda when there is one)
IMPLS=${BENCH_IMPLS:-eager compile}      # PyTorch implementations; compile runs go last (slow to compile)
COMPILE_PRECISIONS=${BENCH_COMPILE_PRECISIONS:-bf16}  # compile takes ~1 min per config on a GPU: bf16 rows only by default
KERNELS=${BENCH_KERNELS:-library}        # graft --kernels (native or library)
GRAFT=${GRAFT:-build/graft}
GRAFT_ARGS=${BENCH_GRAFT_ARGS:-}         # extra flags for every graft bench run
TIMEOUT=${BENCH_TIMEOUT:-300}            # seconds per run
DEADLINE=${BENCH_DEADLINE:-540}          # seconds for the whole script; later runs are skipped
if [ "$DEVICE" = cpu ]; then GEMM_DEFAULT=512; else GEMM_DEFAULT=8192; fi
GEMM=${BENCH_GEMM:-$GEMM_DEFAULT}        # 0: skip the matrix-peak runs
GEMM_DTYPES=${BENCH_GEMM_DTYPES:-bf16 tf32 fp32}

mkdir -p "$OUT/logs" || exit 2

# A Python with PyTorch: $PYTHON, else the first of python3, /usr/bin/python3 that imports torch.
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch, torchvision' >/dev/null 2>&1; then PY=$c; break; fi
  done
fi
if [ -z "$PY" ]; then echo "compare.sh: no python3 with torch and torchvision found (set PYTHON)" >&2; exit 2; fi

HAVE_COMPILE=$("$PY" -c 'import torch; print(int(hasattr(torch, "compile")))' 2>/dev/null || echo 0)

# graft bench is there when its help says "Usage: bench" (an unknown subcommand prints the top-level help).
GRAFT_HELP=""
if [ -x "$GRAFT" ]; then GRAFT_HELP=$(timeout 30 "$GRAFT" bench --help 2>&1 || true); fi
if printf '%s\n' "$GRAFT_HELP" | grep -q 'Usage: bench'; then
  HAVE_GRAFT=1
else
  HAVE_GRAFT=0
  echo "graft bench: not built yet ($GRAFT bench --help does not show a bench subcommand); skipping graft rows"
fi
graft_has() { printf '%s\n' "$GRAFT_HELP" | grep -q -- "$1"; }

# Context for the record: commit, device, versions (read-only queries only).
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | grep -q . && echo '(dirty)')"
  echo "env: BENCH_MODELS='$MODELS' BENCH_MODES='$MODES' BENCH_PRECISIONS='$PRECISIONS' BENCH_INPUT=$INPUT BENCH_BATCH=$BATCH BENCH_STEPS=$STEPS BENCH_WARMUP=$WARMUP BENCH_DEVICE='$DEVICE' BENCH_IMPLS='$IMPLS' BENCH_COMPILE_PRECISIONS='$COMPILE_PRECISIONS' BENCH_KERNELS=$KERNELS BENCH_GEMM=$GEMM"
  echo "python: $PY"
  "$PY" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")' 2>&1
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu,utilization.gpu --format=csv 2>&1
  fi
  [ "$HAVE_GRAFT" = 1 ] && "$GRAFT" --version 2>&1
} > "$OUT/context.txt"
cat "$OUT/context.txt"

FAILED=0
SKIPPED_LATE=0
# run NAME OUTFILE CMD...: the command's stdout goes to OUTFILE, stderr to logs/NAME.log.
run() {
  local name=$1 outfile=$2; shift 2
  if [ "$SECONDS" -ge "$DEADLINE" ]; then
    echo "skip  $name (past BENCH_DEADLINE=${DEADLINE}s)"; SKIPPED_LATE=$((SKIPPED_LATE + 1)); return 0
  fi
  local t0=$SECONDS rc
  printf '%s\n' "$*" > "$OUT/logs/$name.cmd"
  timeout --kill-after=10 "$TIMEOUT" "$@" > "$outfile" 2> "$OUT/logs/$name.log"
  rc=$?
  case $rc in
    0) echo "ok    $name ($((SECONDS - t0)) s)";;
    3) echo "skip  $name: $(tail -n 1 "$OUT/logs/$name.log")"; rm -f "$outfile";;
    124|137) echo "FAIL  $name: timed out after ${TIMEOUT}s"; FAILED=$((FAILED + 1)); rm -f "$outfile";;
    *) echo "FAIL  $name (rc $rc): $(tail -n 3 "$OUT/logs/$name.log" | tr '\n' ' ')"; FAILED=$((FAILED + 1)); rm -f "$outfile";;
  esac
}

PB=("$PY" bench/pytorch_baseline.py)
[ -n "$DEVICE" ] && PB+=(--device "$DEVICE")

# 1. The card's matrix peak (bf16 is the one that matters; tf32/fp32 for the fp32 rows).
if [ "$GEMM" != 0 ]; then
  for dt in $GEMM_DTYPES; do
    run "gemm-$dt" "$OUT/gemm-$dt.json" "${PB[@]}" --gemm "$GEMM" --gemm-dtype "$dt" --steps "$STEPS" --warmup "$WARMUP"
  done
fi

# 2. graft and PyTorch eager, config by config; 3. torch.compile last.
for model in $MODELS; do
  for mode in $MODES; do
    for prec in $PRECISIONS; do
      tag="$model-$mode-$prec"
      common=(--model "$model" --input "$INPUT" --batch "$BATCH" --mode "$mode" --precision "$prec" --steps "$STEPS" --warmup "$WARMUP")
      if [ "$HAVE_GRAFT" = 1 ]; then
        g=("$GRAFT" bench "${common[@]}")
        graft_has --kernels && g+=(--kernels "$KERNELS")
        graft_has --classes && g+=(--classes "$CLASSES")
        [ -n "$DEVICE" ] && graft_has --device && g+=(--device "$DEVICE")
        # shellcheck disable=SC2206
        g+=($GRAFT_ARGS --json)
        run "graft-$tag" "$OUT/graft-$tag.json" "${g[@]}"
      fi
      case " $IMPLS " in *" eager "*)
        run "pytorch-$tag-eager" "$OUT/pytorch-$tag-eager.json" "${PB[@]}" "${common[@]}" --classes "$CLASSES" --impl eager;;
      esac
    done
  done
done
case " $IMPLS " in *" compile "*)
  if [ "$HAVE_COMPILE" = 1 ]; then
    for model in $MODELS; do for mode in $MODES; do for prec in $COMPILE_PRECISIONS; do
      tag="$model-$mode-$prec"
      run "pytorch-$tag-compile" "$OUT/pytorch-$tag-compile.json" "${PB[@]}" --model "$model" --input "$INPUT" \
        --batch "$BATCH" --mode "$mode" --precision "$prec" --steps "$STEPS" --warmup "$WARMUP" --classes "$CLASSES" --impl compile
    done; done; done
  else
    echo "skip  torch.compile runs: not available in this PyTorch ($("$PY" -c 'import torch; print(torch.__version__)'))"
  fi;;
esac

# 4. The table, last.
OUT="$OUT" MODELS="$MODELS" MODES="$MODES" PRECISIONS="$PRECISIONS" "$PY" - <<'EOF'
import json, os

out = os.environ["OUT"]

def load(name):
    """A result file: one JSON document, or output whose last JSON object is the result."""
    path = os.path.join(out, name)
    try:
        text = open(path).read()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):  # the last '{' at a line start that parses to the end
        if lines[i].lstrip().startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    return None

def ips(r):
    return r.get("images_per_second") if r else None

def fmt(x, spec="%.1f"):
    return "-" if x is None else spec % x

def ratio(a, b):
    return None if a is None or not b else a / b

peaks = {}
for dt in ("bf16", "tf32", "fp32", "fp16"):
    g = load("gemm-%s.json" % dt)
    if g and g.get("tflops"):
        peaks[dt] = g["tflops"]
dev = None
rows = []
notes = []
for model in os.environ["MODELS"].split():
    for mode in os.environ["MODES"].split():
        for prec in os.environ["PRECISIONS"].split():
            tag = "%s-%s-%s" % (model, mode, prec)
            g, e, c = load("graft-%s.json" % tag), load("pytorch-%s-eager.json" % tag), load("pytorch-%s-compile.json" % tag)
            dev = dev or (e or {}).get("device") or (g or {}).get("device")
            fg, fe = (g or {}).get("flops_per_image"), (e or c or {}).get("flops_per_image")
            if fg and fe and abs(fg - fe) > 0.01 * fe:
                notes.append("%s: FLOPs per image differ: graft %.4g, pytorch %.4g" % (tag, fg, fe))
            peak = peaks.get(prec)
            pct = lambda r: None if not r or r.get("tflops") is None or not peak else 100.0 * r["tflops"] / peak
            rows.append([model, mode, prec, fmt(ips(g)), fmt(ips(e)), fmt(ips(c)),
                         fmt(ratio(ips(g), ips(e)), "%.2f"), fmt(ratio(ips(g), ips(c)), "%.2f"),
                         fmt(ratio((g or {}).get("peak_bytes"), (e or {}).get("peak_bytes")), "%.2f"),
                         fmt(((e or g or c or {}).get("flops_per_image") or 0) / 1e9 or None, "%.2f"),
                         fmt(pct(g)), fmt(pct(e)), fmt(pct(c))])
head = ["model", "mode", "prec", "graft img/s", "eager img/s", "compile img/s", "graft/eager",
        "graft/compile", "mem g/e", "GFLOP/img", "graft %pk", "eager %pk", "compile %pk"]
w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
print()
print("device: %s" % (dev or "?"))
print("matrix peak (measured GEMM, TFLOP/s): " + (", ".join("%s %.4g" % kv for kv in sorted(peaks.items())) or "not measured"))
print("eager bf16 = autocast + channels_last; %pk = achieved TFLOP/s over the measured GEMM peak of the row's precision")
print("  ".join(h.rjust(n) for h, n in zip(head, w)))
for r in rows:
    print("  ".join(str(x).rjust(n) for x, n in zip(r, w)))
for n in notes:
    print("note: " + n)
EOF
echo
echo "results: $OUT ($(ls "$OUT"/*.json 2>/dev/null | wc -l) JSON files); failed runs: $FAILED; skipped past deadline: $SKIPPED_LATE"
[ "$FAILED" = 0 ]
