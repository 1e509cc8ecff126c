#!/usr/bin/env bash
# Prints the SHA-1 of every file the GPU kit's binaries are built from (sha1sum format,
# sorted by path), without git: the GPU machine gets the working tree but no .git. The kit
# stores this list (tools/gpu-kit.sh); tools/gpu-run.sh compares it with the tree it runs in.
set -euo pipefail
cd "$(dirname "$0")/.."
{ ls CMakeLists.txt cmake/*.cmake; find base kernels runtime layers tools tests bench -type f \
    \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name CMakeLists.txt \); } |
  LC_ALL=C sort | tr '\n' '\0' | xargs -0 sha1sum
