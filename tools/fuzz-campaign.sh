#!/usr/bin/env bash
# Runs every fuzz target (tools/fuzz.sh list) until it reaches RUNS executions or SECONDS,
# whichever comes first, LANES targets at a time, and prints one Markdown table row per
# target for docs/reliability.md.
#   tools/fuzz-campaign.sh [SECONDS [RUNS [LANES]]]     defaults: 1800 10000000 2
# Environment: TARGETS (a space-separated subset, in order), NICE (niceness of the fuzzers,
# default 0: libFuzzer's per-input timeout is wall time, and a niced fuzzer beside a build
# reports slow inputs as hangs), FUZZ_TIMEOUT (tools/fuzz.sh). Logs: build-fuzz/campaign/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-1800}
runs=${2:-10000000}
lanes=${3:-2}
read -r -a targets <<<"${TARGETS:-$(tools/fuzz.sh list | tr '\n' ' ')}"
dir=build-fuzz/campaign
mkdir -p "$dir"

# Build every target first, one at a time (a 0-second run builds and replays the corpus).
for t in "${targets[@]}"; do
  tools/fuzz.sh "$t" 1 >"$dir/$t.build.log" 2>&1 || { cat "$dir/$t.build.log"; exit 1; }
done

run_one() {
  local t=$1 start end rc=0
  start=$(date +%s)
  FUZZ_ARGS="-runs=$runs ${FUZZ_ARGS:-}" nice -n "${NICE:-0}" \
    tools/fuzz.sh "$t" "$seconds" >"$dir/$t.log" 2>&1 || rc=$?
  end=$(date +%s)
  echo "$t $((end - start)) $rc" >"$dir/$t.done"
}

# A lane takes the next target from the queue; 'wait -n' frees a lane.
rm -f "$dir"/*.done
active=0
for t in "${targets[@]}"; do
  if ((active >= lanes)); then wait -n || true; active=$((active - 1)); fi
  echo "fuzz-campaign: $(date -u +%H:%M:%S) start $t" >&2
  run_one "$t" &
  active=$((active + 1))
done
wait || true

echo "| Target | Seconds | Executions | exec/s | Result |"
echo "|---|---|---|---|---|"
failed=0
for t in "${targets[@]}"; do
  read -r _ took rc <"$dir/$t.done"
  line=$(grep -E "^fuzz.sh: $t: [0-9?]+ executions" "$dir/$t.log" | tail -1 || true)
  execs=$(sed -E 's/.*: ([0-9?]+) executions.*/\1/' <<<"$line")
  speed=$(sed -E 's/.* ([0-9?]+) exec\/s.*/\1/' <<<"$line")
  if ((rc == 0)); then result=clean; else result="FAILED (exit $rc, see $dir/$t.log)"; failed=1; fi
  printf '| %s | %s | %s | %s | %s |\n' "$t" "$took" "$execs" "$speed" "$result"
done
exit "$failed"
