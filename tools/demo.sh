#!/usr/bin/env bash
# README command 1: the Fashion-MNIST transfer demo. Installs what is missing, builds, then
#   1. pretrains fmnist_cnn on classes 0-4 (the "source domain");
#   2. for K in {10, 50} labelled images per class of classes 5-9 (the "target domain"),
#      trains (a) from scratch and (b) from the pretrained base with conv layers frozen
#      and a fresh head, same epochs and seed;
#   3. prints the test accuracy of each on the whole test split of classes 5-9.
# Files go to build/demo/. DEMO_EPOCHS, DEMO_PRETRAIN_EPOCHS and DEMO_SEED override;
# DEMO_DEVICE (auto: the GPU when there is one), DEMO_DATA_DIR (a folder of Fashion-MNIST IDX
# files instead of the Debian package's) and DEMO_OUT too. GRAFT=path/to/graft runs that binary
# and installs and builds nothing (tools/gpu-run.sh runs the demo so on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GRAFT:-}" ]; then
  tools/deps.sh
  BUILD_TARGET=graft tools/build.sh >/dev/null
fi
graft=${GRAFT:-$PWD/build/graft}
out=${DEMO_OUT:-build/demo}
mkdir -p "$out"
seed=${DEMO_SEED:-1}
epochs=${DEMO_EPOCHS:-30}
pretrain_epochs=${DEMO_PRETRAIN_EPOCHS:-2}
common=(--model fmnist_cnn --data fashion-mnist --device "${DEMO_DEVICE:-auto}" --seed "$seed")
[ -n "${DEMO_DATA_DIR:-}" ] && common+=(--data-dir "$DEMO_DATA_DIR")

echo "== 1. pretraining on classes 0-4 ($pretrain_epochs epochs)"
"$graft" train "${common[@]}" --classes 0-4 --epochs "$pretrain_epochs" --batch 64 --progress off \
  --save "$out/source.safetensors"

accuracy() {  # checkpoint -> test accuracy on classes 5-9, in percent
  "$graft" eval "${common[@]}" --classes 5-9 --checkpoint "$1" --json 2>/dev/null |
    sed -n 's/^  "accuracy": \(.*\),$/\1/p' | awk '{printf "%.2f", 100 * $1}'
}

declare -A result
for k in 10 50; do
  echo "== 2. K=$k images per class of classes 5-9: from scratch"
  "$graft" train "${common[@]}" --classes 5-9 --per-class "$k" --epochs "$epochs" --batch 32 --progress off \
    --save "$out/scratch-k$k.safetensors" | tail -n 2
  echo "== 2. K=$k: frozen pretrained conv base, fresh head"
  "$graft" train "${common[@]}" --classes 5-9 --per-class "$k" --epochs "$epochs" --batch 32 --progress off \
    --init-from "$out/source.safetensors" --init-only 'conv*' --freeze 'conv*' \
    --save "$out/transfer-k$k.safetensors" | tail -n 2
  result[scratch$k]=$(accuracy "$out/scratch-k$k.safetensors")
  result[transfer$k]=$(accuracy "$out/transfer-k$k.safetensors")
done

echo
echo "Test accuracy on the test images of classes 5-9 (seed $seed, $epochs epochs):"
printf "  %-8s %-12s %-24s\n" "K/class" "scratch" "frozen pretrained base"
for k in 10 50; do
  printf "  %-8s %-12s %-24s\n" "$k" "${result[scratch$k]}%" "${result[transfer$k]}%"
done
