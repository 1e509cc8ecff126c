#!/usr/bin/env bash
# Proves here, without a GPU, that a GPU run works on the lent machine's image, which has none
# of our Debian packages and has cuDNN and cuBLAS only as pip wheels (docs/gpu-runs.md). As
# root, in a private mount namespace (unshare -m), an overlay over /usr hides
#   - every file of the Debian packages tools/deps.sh installs (headers, libraries, CMake
#     configs, Fashion-MNIST), and OpenBLAS's and gfortran's runtime libraries;
#   - cuDNN, cuBLAS/cuBLASLt and NCCL in /usr/local/cuda, which reappear in a pip-like layout
#     (site/nvidia/cudnn/{include,lib}, site/nvidia/cu13/{include,lib},
#     site/nvidia/nccl/{include,lib}, versioned .so names only) that python3 finds as the
#     `nvidia` package, as on the GPU machine.
# Then, in that simulated image:
#   0. controls: the hidden files are gone, and configuring without the kit's prefix fails;
#   1. the kit: its binaries' ldd resolves with the image's libraries alone, and
#      `tools/gpu-run.sh 1` takes the kit and dry-runs (GPU stages skipped, saying so);
#   2. the bad inputs: a stale kit, a missing cuDNN and another compute capability are each
#      named (PLAN_ONLY=1 runs of tools/gpu-run.sh, a stub nvidia-smi for the capability);
#   3. the fallback (unless SIM_FALLBACK=0): `FROM_SOURCE=1 tools/gpu-run.sh 1` configures and
#      builds graft, graft_gpu_tests and graft_tc_gemm_bench with only the kit's prefix, then
#      dry-runs with them.
#   tools/gpu-sim-check.sh      (makes the kit first when .gpu-kit/ is missing or stale)
# Exit status 0 when every check passed; the last line counts them ('N passed, N failed').
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$(id -u)" = 0 ] || { echo "gpu-sim-check: needs root (unshare -m, mount)" >&2; exit 2; }
SIM=${SIM:-/tmp/graft-sim}
CUDA_DIR=$(readlink -f /usr/local/cuda)

if [ ! -x .gpu-kit/bin/graft ] || ! diff -q .gpu-kit/sources.sha1 <(tools/gpu-sources.sh) >/dev/null; then
  echo "gpu-sim-check: making the kit (tools/gpu-kit.sh)"
  tools/gpu-kit.sh
fi

# --- the simulated image: whiteouts in an overlay upper folder, and the pip layout ---
rm -rf "$SIM"
mkdir -p "$SIM/upper" "$SIM/work" "$SIM/site/nvidia/cudnn/include" "$SIM/site/nvidia/cudnn/lib" \
  "$SIM/site/nvidia/cu13/include" "$SIM/site/nvidia/cu13/lib" "$SIM/site/nvidia/nccl/include" "$SIM/site/nvidia/nccl/lib"
hide() {  # hide ABSOLUTE-PATH-UNDER-/usr (resolved): a character device 0/0 is an overlay whiteout
  local p rel
  p=$(readlink -f "$1")
  case "$p" in /usr/*) ;; *) return 0;; esac
  rel=${p#/usr/}
  mkdir -p "$SIM/upper/$(dirname "$rel")"
  [ -e "$SIM/upper/$rel" ] || mknod "$SIM/upper/$rel" c 0 0
}
hide_link() {  # hide a symbolic link itself (not its target)
  local p rel
  p=$(readlink -f "$(dirname "$1")")/$(basename "$1")
  rel=${p#/usr/}
  mkdir -p "$SIM/upper/$(dirname "$rel")"
  [ -e "$SIM/upper/$rel" ] || mknod "$SIM/upper/$rel" c 0 0
}
packages=(nlohmann-json3-dev libcli11-dev libstb-dev libstb0 libyaml-cpp-dev libyaml-cpp0.7 libopenblas-dev
          libopenblas-pthread-dev libopenblas0-pthread libopenblas0 googletest libgtest-dev zlib1g-dev libgfortran5
          libquadmath0 dataset-fashion-mnist)
hidden=0
for pkg in "${packages[@]}"; do
  dpkg-query -W "$pkg" >/dev/null 2>&1 || continue
  while IFS= read -r f; do
    if [ -L "$f" ]; then hide_link "$f"; hidden=$((hidden + 1))
    elif [ -f "$f" ]; then hide "$f"; hidden=$((hidden + 1)); fi
  done < <(dpkg -L "$pkg" | grep '^/usr/')
done
# Debian's alternatives put OpenBLAS's libblas/liblapack links outside the packages' lists.
for f in /usr/lib/x86_64-linux-gnu/libblas.so* /usr/lib/x86_64-linux-gnu/liblapack.so* \
         /usr/lib/x86_64-linux-gnu/libopenblas*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  hide_link "$f"
done
# cuDNN and cuBLAS move to the pip layout (hard links: same file system, no copies).
for f in "$CUDA_DIR"/lib/libcudnn*.so.9; do ln "$(readlink -f "$f")" "$SIM/site/nvidia/cudnn/lib/$(basename "$f")"; done
for f in "$CUDA_DIR"/lib/libcublas.so.13 "$CUDA_DIR"/lib/libcublasLt.so.13; do
  ln "$(readlink -f "$f")" "$SIM/site/nvidia/cu13/lib/$(basename "$f")"
done
cp "$CUDA_DIR"/include/cudnn*.h "$SIM/site/nvidia/cudnn/include/"
cp "$CUDA_DIR"/include/cublas*.h "$SIM/site/nvidia/cu13/include/"
ln "$(readlink -f "$CUDA_DIR"/lib/libnccl.so.2)" "$SIM/site/nvidia/nccl/lib/libnccl.so.2"
cp -r "$CUDA_DIR"/include/nccl* "$SIM/site/nvidia/nccl/include/"
for f in "$CUDA_DIR"/lib/libcudnn* "$CUDA_DIR"/lib/libcublas* "$CUDA_DIR"/lib/libnccl* "$CUDA_DIR"/include/cudnn*.h \
         "$CUDA_DIR"/include/cublas*.h "$CUDA_DIR"/include/nccl*.h; do
  if [ -L "$f" ]; then hide_link "$f"; else hide "$f"; fi
done
echo "gpu-sim-check: hiding $hidden files of ${#packages[@]} Debian packages, cuDNN, cuBLAS and NCCL (now in $SIM/site/nvidia)"

# --- inside the simulated image ---
export SIM ROOT
unshare -m bash -s <<'INSIDE'
set -uo pipefail
cd "$ROOT"
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$SIM/upper,workdir=$SIM/work" /usr || { echo "FAIL: overlay mount"; exit 1; }
export PYTHONPATH=$SIM/site
fails=()
passed=0
check() { if [ "$2" = 0 ]; then echo "ok    $1"; passed=$((passed + 1)); else echo "FAIL  $1"; fails+=("$1"); fi; }

# 0. controls
gone=0
for f in /usr/include/nlohmann/json.hpp /usr/include/yaml-cpp/yaml.h /usr/include/gtest/gtest.h /usr/include/zlib.h \
         /usr/include/CLI/CLI.hpp /usr/include/stb/stb_image.h /usr/lib/x86_64-linux-gnu/libyaml-cpp.so.0.7 \
         /usr/local/cuda/lib64/libcudnn.so.9 /usr/local/cuda/include/cudnn.h /usr/local/cuda/lib64/libcublas.so.13 \
         /usr/local/cuda/lib64/libnccl.so.2 /usr/local/cuda/include/nccl.h \
         /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz; do
  [ -e "$f" ] && { echo "still visible: $f"; gone=1; }
done
check "the Debian packages, cuDNN, cuBLAS and NCCL are hidden" $gone
python3 -c 'import nvidia, os; assert os.path.isdir(os.path.join(list(nvidia.__path__)[0], "cudnn", "lib"))' 2>/dev/null
check "python3 finds cuDNN as a pip wheel" $?
rm -rf /tmp/graft-sim-noprefix
cmake -S . -B /tmp/graft-sim-noprefix -G Ninja -DGRAFT_CUDA=OFF >/tmp/graft-sim-noprefix.log 2>&1
rc=$?
grep -q "graft needs" /tmp/graft-sim-noprefix.log
check "without the kit's prefix, configuring fails and names what is missing ($(grep -m1 -o 'graft needs [^:]*' /tmp/graft-sim-noprefix.log))" $(( rc != 0 && $? == 0 ? 0 : 1 ))

# 1. the kit
ldd .gpu-kit/bin/* >/tmp/graft-sim-ldd.txt 2>&1
LD_LIBRARY_PATH=$SIM/site/nvidia/cudnn/lib:$SIM/site/nvidia/cu13/lib:$SIM/site/nvidia/nccl/lib ldd .gpu-kit/bin/* | grep -q 'not found'
check "the kit's ldd resolves with the image's libraries and the pip wheels" $(( $? == 0 ? 1 : 0 ))
OUT=/tmp/graft-sim-run1 bash tools/gpu-run.sh 1 >/tmp/graft-sim-run1.log 2>&1
rc=$?
grep -q '^binaries *kit ' /tmp/graft-sim-run1.log
check "tools/gpu-run.sh 1 runs the kit (rc $rc; $(tail -2 /tmp/graft-sim-run1.log | head -1))" $(( rc == 0 && $? == 0 ? 0 : 1 ))

# 2. bad inputs, named
stale=$(mktemp -d)
cp -al .gpu-kit "$stale/kit"
rm "$stale/kit/sources.sha1"
sed '1s/^[0-9a-f]\{8\}/00000000/' .gpu-kit/sources.sha1 >"$stale/kit/sources.sha1"
first=$(head -1 .gpu-kit/sources.sha1 | awk '{print $2}')
PLAN_ONLY=1 KIT="$stale/kit" OUT=/tmp/graft-sim-stale bash tools/gpu-run.sh 1 >/tmp/graft-sim-stale.log 2>&1
grep -q "built from another tree.*$first" /tmp/graft-sim-stale.log
check "a kit from another tree is named, with the file that differs" $?
PYTHONPATH= PLAN_ONLY=1 OUT=/tmp/graft-sim-nolib bash tools/gpu-run.sh 1 >/tmp/graft-sim-nolib.log 2>&1
rc=$?
grep -q "libraries *FAIL *not found: .*libcudnn.so.9.*looked in:" /tmp/graft-sim-nolib.log
check "a missing cuDNN stops the run, naming it and where it looked (rc $rc)" $(( rc != 0 && $? == 0 ? 0 : 1 ))
stub=$(mktemp -d)
printf '#!/bin/sh\ncase "$*" in *query-gpu*) echo "NVIDIA A100-SXM4-80GB, 8.0, 81920 MiB, 580.00";; *-L*) echo "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-0)";; *) echo stub;; esac\n' >"$stub/nvidia-smi"
chmod +x "$stub/nvidia-smi"
PATH="$stub:$PATH" PLAN_ONLY=1 OUT=/tmp/graft-sim-cap bash tools/gpu-run.sh 1 >/tmp/graft-sim-cap.log 2>&1
grep -q "the kit has code for 90-real; this device has compute capability 8.0" /tmp/graft-sim-cap.log
check "another compute capability is named, with the kit's" $?
rm -rf "$stale" "$stub"

# 3. the fallback: build from the carried sources and the kit's prefix only
if [ "${SIM_FALLBACK:-1}" = 1 ]; then
  rm -rf build-gpu-run
  OUT=/tmp/graft-sim-src FROM_SOURCE=1 DEADLINE=${SIM_DEADLINE:-1500} bash tools/gpu-run.sh 1 >/tmp/graft-sim-src.log 2>&1
  rc=$?
  grep -q '^binaries *built ' /tmp/graft-sim-src.log
  check "FROM_SOURCE=1: built with the kit's prefix and dry-ran (rc $rc; $(grep '^binaries' /tmp/graft-sim-src.log | tail -1 | cut -c1-80))" $(( rc == 0 && $? == 0 ? 0 : 1 ))
  grep -q '^binaries *built .*NCCL ON' /tmp/graft-sim-src.log
  check "FROM_SOURCE=1: NCCL found as a pip wheel (site/nvidia/nccl)" $?
fi

for f in /tmp/graft-sim-run1.log /tmp/graft-sim-src.log; do
  [ -f "$f" ] && { echo "--- $f (end)"; tail -14 "$f"; }
done
[ "${#fails[@]}" = 0 ] || echo "gpu-sim-check: FAILED: ${fails[*]}"
echo "gpu-sim-check: $passed passed, ${#fails[@]} failed"
[ "${#fails[@]}" = 0 ]
INSIDE
