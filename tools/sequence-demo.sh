#!/usr/bin/env bash
# The sequence transfer demo, tools/demo.sh's twin with an LSTM reading Fashion-MNIST row by
# row (28 steps of 28 pixels; no new data: the LSTM reads an image [28, 28, 1] so):
#   1. pretrains lstm:H,POOL,dense:5 on classes 0-4 (the "source domain");
#   2. for K in {10, 50} examples per class of classes 5-9, trains (a) from scratch,
#      (b) from the pretrained LSTM, frozen, with a fresh head, and (c) the control: the LSTM
#      frozen at its random initialisation with the same head; same epochs, seed and lr;
#   3. prints the test accuracy of each on the whole test split of classes 5-9.
# Small on purpose (hidden 64, 1 pretraining epoch, 30 few-shot epochs) so it runs in a few
# minutes on 2 CPU cores. tools/sequence_demo_torch.py runs the same with PyTorch
# (SEQ_DEMO_TORCH=1 runs it after graft's); docs/recipes.md "Sequence transfer" has both.
# Files go to build/sequence-demo/. SEQ_DEMO_SEED, SEQ_DEMO_EPOCHS, SEQ_DEMO_PRETRAIN_EPOCHS,
# SEQ_DEMO_HIDDEN, SEQ_DEMO_POOL (flatten|last|mean), SEQ_DEMO_LR (few-shot Adam lr), SEQ_DEMO_DEVICE,
# SEQ_DEMO_DATA_DIR and SEQ_DEMO_OUT override. GRAFT=path/to/graft runs that binary and
# installs and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GRAFT:-}" ]; then
  tools/deps.sh
  BUILD_TARGET=graft tools/build.sh >/dev/null
fi
graft=${GRAFT:-$PWD/build/graft}
out=${SEQ_DEMO_OUT:-build/sequence-demo}
mkdir -p "$out"
seed=${SEQ_DEMO_SEED:-1}
epochs=${SEQ_DEMO_EPOCHS:-30}
pretrain_epochs=${SEQ_DEMO_PRETRAIN_EPOCHS:-1}
hidden=${SEQ_DEMO_HIDDEN:-64}
pool=${SEQ_DEMO_POOL:-flatten}
lr=${SEQ_DEMO_LR:-0.01}
data_dir=${SEQ_DEMO_DATA_DIR:-/usr/share/datasets/fashion-mnist}
common=(--data fashion-mnist --data-dir "$data_dir" --device "${SEQ_DEMO_DEVICE:-auto}" --seed "$seed")
model="lstm:$hidden,$pool,dense:5"

start=$(date +%s)
echo "== 1. pretraining $model on classes 0-4 ($pretrain_epochs epochs)"
"$graft" train "${common[@]}" --model "$model" --classes 0-4 --epochs "$pretrain_epochs" --batch 64 --lr 0.001 \
  --progress off --save "$out/source.safetensors" | tail -n 1

accuracy() {  # checkpoint -> test accuracy on classes 5-9, in percent
  "$graft" eval "${common[@]}" --classes 5-9 --checkpoint "$1" --json 2>/dev/null |
    sed -n 's/^  "accuracy": \(.*\),$/\1/p' | awk '{printf "%.2f", 100 * $1}'
}

declare -A result
for k in 10 50; do
  echo "== 2. K=$k sequences per class of classes 5-9: from scratch"
  "$graft" train "${common[@]}" --model "$model" --classes 5-9 --per-class "$k" --epochs "$epochs" --batch 32 \
    --lr "$lr" --progress off --save "$out/scratch-k$k.safetensors" | tail -n 1
  echo "== 2. K=$k: frozen pretrained LSTM, fresh head"
  "$graft" train "${common[@]}" --model "$model" --classes 5-9 --per-class "$k" --epochs "$epochs" --batch 32 \
    --lr "$lr" --progress off --init-from "$out/source.safetensors" --init-only lstm --freeze lstm \
    --save "$out/transfer-k$k.safetensors" | tail -n 1
  echo "== 2. K=$k: control, the LSTM frozen at its random initialisation, the same head"
  "$graft" train "${common[@]}" --model "$model" --classes 5-9 --per-class "$k" --epochs "$epochs" --batch 32 \
    --lr "$lr" --progress off --freeze lstm --save "$out/random-k$k.safetensors" | tail -n 1
  result[scratch$k]=$(accuracy "$out/scratch-k$k.safetensors")
  result[transfer$k]=$(accuracy "$out/transfer-k$k.safetensors")
  result[random$k]=$(accuracy "$out/random-k$k.safetensors")
done

echo
echo "graft: test accuracy on classes 5-9 ($model, seed $seed, $epochs epochs, $(( $(date +%s) - start )) s):"
printf "  %-8s %-12s %-24s %-20s\n" "K/class" "scratch" "frozen pretrained LSTM" "frozen random LSTM"
for k in 10 50; do
  printf "  %-8s %-12s %-24s %-20s\n" "$k" "${result[scratch$k]}%" "${result[transfer$k]}%" "${result[random$k]}%"
done

if [ "${SEQ_DEMO_TORCH:-0}" = 1 ]; then
  echo
  /usr/bin/python3 tools/sequence_demo_torch.py --data-dir "$data_dir" --seed "$seed" --epochs "$epochs" \
    --pretrain-epochs "$pretrain_epochs" --hidden "$hidden" --pool "$pool" --lr "$lr" --random-base
fi
