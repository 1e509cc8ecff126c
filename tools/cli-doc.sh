#!/usr/bin/env bash
# Rewrites the flag reference in docs/cli.md from the program's own --help, so it cannot
# drift: the fenced block under each "## graft SUB" heading is replaced by `graft SUB --help`;
# everything else (the hand-written sections: TensorBoard, MLflow, ONNX, ...) stays as it is.
# A subcommand without a heading gets one, with its block, at the end.
#   tools/cli-doc.sh [GRAFT]     (default build/graft)
set -euo pipefail
cd "$(dirname "$0")/.."
graft=${1:-build/graft}
[[ -x $graft ]] || { echo "cli-doc.sh: $graft is not built (tools/build.sh)" >&2; exit 2; }
help=$(mktemp -d)
trap 'rm -rf "$help"' EXIT
subs=(info train eval predict export bench)
for sub in "${subs[@]}"; do
  "$graft" "$sub" --help | sed "s/^Usage: $sub/Usage: graft $sub/" >"$help/$sub"
done
[[ -f docs/cli.md ]] || printf '# graft command line\n' >docs/cli.md
awk -v dir="$help" '
  /^## graft [a-z]+$/ { sub_name = $3; print; pending = 1; next }
  pending && /^```/ {                      # the block under the heading: regenerated
    print "```"
    while ((getline line < (dir "/" sub_name)) > 0) print line
    close(dir "/" sub_name)
    skipping = 1; pending = 0; done[sub_name] = 1; next
  }
  skipping { if ($0 ~ /^```/) { print "```"; skipping = 0 } ; next }
  pending && /^## / { pending = 0 }
  { print }
  END {
    n = split("'"${subs[*]}"'", all, " ")
    for (i = 1; i <= n; ++i) if (!(all[i] in done)) {
      printf "\n## graft %s\n\n```\n", all[i]
      while ((getline line < (dir "/" all[i])) > 0) print line
      print "```"
    }
  }' docs/cli.md >docs/cli.md.tmp
mv docs/cli.md.tmp docs/cli.md
echo "cli-doc.sh: wrote docs/cli.md"
