#!/usr/bin/env bash
# Makes the GPU run kit: the folder .gpu-kit/ (ignored by git) that a run on a lent GPU
# machine carries (`carry: [".gpu-kit"]`), because that machine runs another image with
# none of our Debian packages and no network (docs/gpu-runs.md). It holds
#   bin/      graft, graft_gpu_tests, graft_tc_gemm_bench for sm_90, linked so that they need
#             only glibc and the CUDA libraries (libcublas, libcublasLt, libcudnn, libnccl) from
#             the machine's pip wheels: libstdc++, yaml-cpp, zlib and the CUDA runtime are static;
#             OpenBLAS is left out (the GPU checks do not need a fast CPU GEMM);
#   prefix/   headers and static libraries of our Debian dependencies, for the fallback that
#             builds from source there when the binaries cannot run (tools/gpu-run.sh does it);
#   data/     a Fashion-MNIST subset (IDX .gz) for the training checks and the demo's GPU stage;
#   MANIFEST  what it was built from: commit, date, architectures, compilers, and
#   sources.sha1, the hash of every source file, so a run can tell a kit from another tree.
#
#   tools/gpu-kit.sh                 build (build-kit/) and assemble .gpu-kit/
#   ARCHS=80-real;90-real tools/gpu-kit.sh     other architectures (default 90-real: H100/H200)
# Replaces .gpu-kit/ only when everything is in place. Prints the kit's size against the
# budget: kit plus working tree must stay under 40 MiB (a run carries at most 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${KIT:-.gpu-kit}
BUILD_DIR=${BUILD_DIR:-build-kit}
ARCHS=${ARCHS:-90-real}
TRAIN_IMAGES=${TRAIN_IMAGES:-12000}  # of 60,000: ~1,200 a class, enough for the demo's K draws
TEST_IMAGES=${TEST_IMAGES:-5000}     # of 10,000
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}

tools/deps.sh
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_PORTABLE=ON -DGRAFT_OPENBLAS=OFF -DGRAFT_MPI=OFF \
  "-DGRAFT_CUDA_ARCHITECTURES=$ARCHS" "${launcher[@]}" >"$BUILD_DIR.configure.log" 2>&1 ||
  { cat "$BUILD_DIR.configure.log"; exit 1; }
grep -q "graft: CUDA backend ON" "$BUILD_DIR.configure.log" ||
  { grep -E "graft|CUDA" "$BUILD_DIR.configure.log"; echo "gpu-kit: the CUDA backend is off in this configuration: a kit needs it" >&2; exit 1; }
cmake --build "$BUILD_DIR" -j"$(nproc)" --target graft graft_gpu_tests graft_tc_gemm_bench

tmp=$KIT.tmp
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/data/fashion-mnist" "$tmp/prefix/include/stb" "$tmp/prefix/lib"
for b in graft graft_tc_gemm_bench tests/graft_gpu_tests; do strip -o "$tmp/bin/$(basename "$b")" "$BUILD_DIR/$b"; done

# What the binaries need from the machine: nothing beyond glibc and the CUDA libraries.
allowed='^(libc|libm|libdl|librt|libpthread|ld-linux-x86-64)\.so|^(libcublas|libcublasLt)\.so\.13$|^libcudnn\.so\.9$|^libnccl\.so\.2$'
for b in "$tmp"/bin/*; do
  extra=$(readelf -d "$b" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | grep -Ev "$allowed" || true)
  [ -z "$extra" ] || { echo "gpu-kit: $b needs $extra, which the GPU image may lack: link it statically" >&2; exit 1; }
done

# The fallback's prefix: what tools/deps.sh installs here, as headers and static archives.
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/yaml-cpp /usr/include/gtest /usr/include/zlib.h \
  /usr/include/zconf.h "$tmp/prefix/include/"
cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_resize.h /usr/include/stb/stb_image_write.h \
  "$tmp/prefix/include/stb/"
for a in libyaml-cpp.a libgtest.a libgtest_main.a libz.a; do cp "/usr/lib/x86_64-linux-gnu/$a" "$tmp/prefix/lib/"; done

# A Fashion-MNIST subset: the first N images of each split (their classes are balanced).
python3 - "$FMNIST" "$tmp/data/fashion-mnist" "$TRAIN_IMAGES" "$TEST_IMAGES" <<'EOF'
import gzip, struct, sys
src, dst, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for split, n in (("train", n_train), ("t10k", n_test)):
    for kind, item in (("images-idx3", 28 * 28), ("labels-idx1", 1)):
        name = f"{split}-{kind}-ubyte.gz"
        with gzip.open(f"{src}/{name}", "rb") as f:
            data = f.read()
        dims = data[3]
        header = bytearray(data[:4 + 4 * dims])
        count = struct.unpack(">I", header[4:8])[0]
        if n > count:
            sys.exit(f"gpu-kit: {name} has {count} items, fewer than the {n} asked for")
        header[4:8] = struct.pack(">I", n)
        body = data[4 + 4 * dims: 4 + 4 * dims + n * item]
        with gzip.GzipFile(f"{dst}/{name}", "wb", compresslevel=9, mtime=0) as f:
            f.write(bytes(header) + body)
EOF

# The manifest: where it came from, and the hash of every file the binaries were built from.
tools/gpu-sources.sh >"$tmp/sources.sha1"
{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), glibc $(ldd --version | head -1 | awk '{print $NF}')"
  echo "archs: $ARCHS"
  echo "compilers: $(g++ --version | head -1); $(nvcc --version | tail -1)"
  echo "data: Fashion-MNIST, first $TRAIN_IMAGES train and $TEST_IMAGES test images"
} >"$tmp/MANIFEST"

rm -rf "$KIT"
mv "$tmp" "$KIT"
kit_kib=$(du -sk "$KIT" | cut -f1)
tree_kib=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 du -ck 2>/dev/null || true) | tail -1 | cut -f1)
total_mib=$(((kit_kib + tree_kib + 1023) / 1024))
echo "gpu-kit: $KIT: $((kit_kib / 1024)) MiB (bin $(du -sh "$KIT/bin" | cut -f1), prefix $(du -sh "$KIT/prefix" | cut -f1), data $(du -sh "$KIT/data" | cut -f1)); with the working tree $total_mib MiB of the 40 MiB budget"
cat "$KIT/MANIFEST"
if [ "$total_mib" -gt 40 ]; then echo "gpu-kit: over budget" >&2; exit 1; fi
