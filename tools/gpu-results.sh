#!/usr/bin/env bash
# Files what a GPU run brought back under bench/results/, so the result can be seen and
# committed: the summary, the unpacked logs, and a README with the device, date and command.
#   tools/gpu-results.sh FILES_AT NAME 'COMMAND'    e.g. tools/gpu-results.sh /work/.device/x run1 'OUT=$OUT bash tools/gpu-run.sh 1'
# FILES_AT is the folder the device tool's reply names; NAME a short label (run1, run2).
set -euo pipefail
[ $# = 3 ] || { echo "usage: tools/gpu-results.sh FILES_AT NAME 'COMMAND'" >&2; exit 2; }
from=$1 name=$2 command=$3
cd "$(dirname "$0")/.."
[ -f "$from/summary.txt" ] || { echo "gpu-results: $from has no summary.txt (is it the reply's files_at?)" >&2; exit 1; }
dest=bench/results/$(date -u +%Y-%m-%d)-$name
[ -e "$dest" ] && dest=$dest-$(date -u +%H%M)
mkdir -p "$dest/logs"
cp "$from/summary.txt" "$dest/"
for a in "$from"/*.tar.gz; do [ -f "$a" ] && tar -C "$dest/logs" -xzf "$a"; done
device=$(sed -n 's/^device *[a-z]* *//p' "$dest/summary.txt" | head -1)
{
  echo "# GPU $name, $(date -u +%Y-%m-%d)"
  echo
  echo "- device: ${device:-see summary.txt}"
  echo "- command (device tool, run): \`$command\`, carry \`.gpu-kit\`"
  echo "- commit: $(git rev-parse HEAD)"
  echo "- kit: $(grep -h '^commit:' .gpu-kit/MANIFEST 2>/dev/null | head -1 || echo 'none')"
  echo
  echo '```'
  cat "$dest/summary.txt"
  echo '```'
} >"$dest/README.md"
echo "gpu-results: $dest ($(du -sh "$dest" | cut -f1)); commit it: git add $dest"
