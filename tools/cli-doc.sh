#!/usr/bin/env bash
# Writes docs/cli.md from the program's own --help, so the reference cannot drift:
#   tools/cli-doc.sh [GRAFT]     (default build/graft)
set -euo pipefail
cd "$(dirname "$0")/.."
graft=${1:-build/graft}
[[ -x $graft ]] || { echo "cli-doc.sh: $graft is not built (tools/build.sh)" >&2; exit 2; }
{
  echo "# graft command line"
  echo
  echo "Exit status: 0 on success, 1 on an error graft reports (with the file, flag, tensor or layer at fault), 2 on flags it cannot parse, 130/143 after an interrupt that saved a resumable checkpoint."
  for sub in info train eval predict bench; do
    echo
    echo "## graft $sub"
    echo
    echo '```'
    "$graft" "$sub" --help | sed "s/^Usage: $sub/Usage: graft $sub/"
    echo '```'
  done
} >docs/cli.md.tmp
mv docs/cli.md.tmp docs/cli.md
echo "cli-doc.sh: wrote docs/cli.md"
