#!/usr/bin/python3
"""The PyTorch side of tools/sequence-demo.sh: the same runs with torch, for the comparison in
docs/recipes.md ("Sequence transfer").

An LSTM (hidden 64, one layer, every step's output flattened, linear head; graft's
`lstm:64,flatten,dense:5`) reads Fashion-MNIST row by row (28 steps of 28 pixels in [0, 1]).
It is pretrained on classes 0-4, then for K in {10, 50} per class of classes 5-9 trained (a)
from scratch and (b) from the pretrained LSTM, frozen, with a fresh head, and with
--random-base (c) the LSTM frozen at its random initialisation; the test accuracy on classes
5-9 is printed for each. Same hyper-parameters as the script: Adam lr 1e-3 pretraining, 1e-2
few-shot, batch 64 pretraining / 32 few-shot. --cell, --layers, --bidirectional, --pool,
--frozen-lr, --finetune and --random-base are the sweep in docs/recipes.md ("Looking for a
setting where the frozen base wins").

Runs with Debian's python3-torch (/usr/bin/python3); reads the IDX files with numpy (no
torchvision, no download). Few-shot draws use numpy's generator with the seed, so they are not
graft's draws: compare accuracies within the tolerance docs/recipes.md states, not bit for bit.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, split):
    def find(stem):
        for name in (stem, stem + ".gz"):
            if os.path.exists(os.path.join(data_dir, name)):
                return os.path.join(data_dir, name)
        raise SystemExit(f"{data_dir}: no {stem}[.gz] (apt-get install dataset-fashion-mnist)")
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return x, y


def select(x, y, classes):
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([relabel[c] for c in y[keep]], dtype=np.int64)


def few_shot(x, y, k, seed):
    rng = np.random.default_rng(seed)
    picks = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False)
                                    for c in np.unique(y)]))
    return x[picks], y[picks]


class RowLstm(nn.Module):
    """graft's `lstm:H[xL][,bi],POOL,dense:5` (gru with cell="gru"). pool "flatten" reads every
    step's output ([N, 28 * H]), graft's `flatten`."""

    def __init__(self, hidden, classes, pool, cell="lstm", layers=1, bidirectional=False):
        super().__init__()
        self.pool = pool
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.lstm = rnn(28, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        features = hidden * (2 if bidirectional else 1)
        self.fc = nn.Linear(features * 28 if pool == "flatten" else features, classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        if self.pool == "flatten":
            return self.fc(out.reshape(len(out), -1))
        return self.fc(out[:, -1] if self.pool == "last" else out.mean(1))


def train(model, x, y, epochs, batch, seed, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(yt), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    pred = torch.cat([model(torch.from_numpy(x[i:i + 1000])).argmax(1) for i in range(0, len(y), 1000)])
    return float((pred.numpy() == y).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30, help="few-shot epochs")
    p.add_argument("--pretrain-epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate, few-shot runs")
    p.add_argument("--pretrain-lr", type=float, default=1e-3, help="Adam's learning rate, pretraining")
    p.add_argument("--pool", choices=["last", "mean", "flatten"], default="flatten")
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--frozen-lr", type=float, help="Adam's learning rate for the frozen base's head (default: --lr)")
    p.add_argument("--finetune", action="store_true",
                   help="also train from the pretrained recurrent layers with everything trainable")
    p.add_argument("--random-base", action="store_true",
                   help="also train a fresh head on the recurrent layers frozen at their random initialisation")
    p.add_argument("--k", type=int, nargs="+", default=[10, 50])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    x_train, y_train = load(a.data_dir, "train")
    x_test, y_test = load(a.data_dir, "test")
    src_x, src_y = select(x_train, y_train, [0, 1, 2, 3, 4])
    tgt_x, tgt_y = select(x_train, y_train, [5, 6, 7, 8, 9])
    test_x, test_y = select(x_test, y_test, [5, 6, 7, 8, 9])

    start = time.time()
    torch.manual_seed(a.seed)
    def model():
        return RowLstm(a.hidden, 5, a.pool, a.cell, a.layers, a.bidirectional)

    source = model()
    train(source, src_x, src_y, a.pretrain_epochs, 64, a.seed, a.pretrain_lr)
    result = {"seed": a.seed, "hidden": a.hidden, "lr": a.lr, "pool": a.pool, "cell": a.cell, "layers": a.layers,
              "bidirectional": a.bidirectional, "frozen_lr": a.frozen_lr or a.lr, "epochs": a.epochs,
              "pretrain_epochs": a.pretrain_epochs, "pretrain_seconds": round(time.time() - start, 1)}
    for k in a.k:
        kx, ky = few_shot(tgt_x, tgt_y, k, a.seed)
        torch.manual_seed(a.seed)
        scratch = model()
        train(scratch, kx, ky, a.epochs, 32, a.seed, a.lr)
        torch.manual_seed(a.seed)
        transfer = model()
        transfer.lstm.load_state_dict(source.lstm.state_dict())
        transfer.lstm.requires_grad_(False)
        train(transfer, kx, ky, a.epochs, 32, a.seed, a.frozen_lr or a.lr)
        result[f"scratch{k}"] = accuracy(scratch, test_x, test_y)
        result[f"transfer{k}"] = accuracy(transfer, test_x, test_y)
        if a.finetune:
            torch.manual_seed(a.seed)
            tuned = model()
            tuned.lstm.load_state_dict(source.lstm.state_dict())
            train(tuned, kx, ky, a.epochs, 32, a.seed, a.lr)
            result[f"finetune{k}"] = accuracy(tuned, test_x, test_y)
        if a.random_base:
            torch.manual_seed(a.seed)
            untrained = model()
            untrained.lstm.requires_grad_(False)
            train(untrained, kx, ky, a.epochs, 32, a.seed, a.frozen_lr or a.lr)
            result[f"random{k}"] = accuracy(untrained, test_x, test_y)
    result["seconds"] = round(time.time() - start, 1)

    if a.json:
        print(json.dumps(result))
        return
    print(f"PyTorch {torch.__version__}: test accuracy on classes 5-9 (seed {a.seed}, {a.epochs} epochs, "
          f"{result['seconds']} s):")
    print(f"  {'K/class':<8} {'scratch':<12} {'frozen pretrained LSTM':<24}" + (" frozen random LSTM" if a.random_base else ""))
    for k in a.k:
        random = f" {100 * result[f'random{k}']:.2f}%" if a.random_base else ""
        print(f"  {k:<8} {100 * result[f'scratch{k}']:.2f}%{'':<6} {100 * result[f'transfer{k}']:.2f}%{'':<17}{random}")


if __name__ == "__main__":
    main()
