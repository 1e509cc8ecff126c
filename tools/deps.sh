#!/usr/bin/env bash
# Installs the Debian packages graft needs to build, test and run the demo, only those that
# are missing (so a machine that has them is not touched). Run as root or with sudo.
#   tools/deps.sh            build + test + demo dependencies
#   tools/deps.sh --tests    also python3-venv and build/python-env (tools/python-env.sh),
#                            the Python packages the interop tests read graft's files with
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config zlib1g-dev nlohmann-json3-dev libcli11-dev libstb-dev
          libopenblas-dev libyaml-cpp-dev googletest libgtest-dev dataset-fashion-mnist
          libopenmpi-dev openmpi-bin)  # MPI: data-parallel training across processes (optional to the build)
with_tests=0
if [[ "${1:-}" == "--tests" ]]; then
  with_tests=1
  packages+=(python3 python3-venv gfortran)  # gfortran: examples/fortran (tools/examples.sh)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "graft: installing missing packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ((with_tests)); then
  "$(dirname "$0")/python-env.sh" >/dev/null
fi
