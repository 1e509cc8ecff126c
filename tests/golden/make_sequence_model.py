#!/usr/bin/python3
"""Writes tests/fixtures/golden_sequence_model.safetensors, which
tests/sequence_model_test.cpp compares graft's whole sequence models against.

Run with the system Python (Debian python3-torch 1.13):
    /usr/bin/python3 tests/golden/make_sequence_model.py
No downloads, every weight random, everything seeded; the file is committed (CI has no
torch). The safetensors file is written here by hand (8-byte header length, sorted JSON
header, raw little-endian float32), so the script needs torch alone.

Three models, each as graft builds it from the spec in its metadata:
  lstm: nn.Embedding(13, 6, padding_idx=0) -> nn.LSTM(6, 5, num_layers=2,
        bidirectional=True, batch_first=True) over packed sequences of random lengths ->
        the last step (forward half at length-1, reverse half at step 0) -> nn.Linear(10, 4)
  gru:  nn.GRU(3, 4, batch_first=True) over packed float sequences -> the mean over each
        sequence's steps -> nn.Linear(4, 3)
  flatten: nn.LSTM(3, 4, bidirectional=True, batch_first=True) over packed float sequences
        -> the padded output (zero past each length) reshaped to [N, 5 * 8] -> nn.Linear(40, 3)
Per model <m>: <m>.param.<name> (the state dict, PyTorch's names and layouts), <m>.x
(token ids as floats [N, T, 1], or features [N, T, F]), <m>.lengths, <m>.labels (as
floats), <m>.logits, <m>.loss (mean cross-entropy), <m>.grad.<name> (of the loss), and
<m>.after.<name>: the parameters after 3 torch.optim.Adam steps (lr 0.01) on the same batch.
The models run in float64 from float32 values; results are stored as float32.
Metadata: <m>.spec, <m>.sample (steps,features), <m>.classes, <m>.names (the state
dict's keys in order), adam_lr, adam_steps.
"""
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                   "golden_sequence_model.safetensors")
ADAM_LR, ADAM_STEPS = 0.01, 3


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    print(f"{path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")


class LstmModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(13, 6, padding_idx=0)
        self.lstm = nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(10, 4)

    def forward(self, ids, lengths):
        x = self.embedding(ids)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=ids.shape[1])
        h = self.lstm.hidden_size
        rows = torch.arange(ids.shape[0])
        last = torch.cat([y[rows, lengths - 1, :h], y[:, 0, h:]], dim=1)
        return self.fc(last)


class FlattenModel(nn.Module):
    def __init__(self, steps):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(steps * 8, 3)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.fc(y.reshape(x.shape[0], -1))  # padded steps are zero


class GruModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
        mean = y.sum(dim=1) / lengths.to(y.dtype).unsqueeze(1)
        return self.fc(mean)


def random_lengths(n, steps):
    lengths = torch.randint(1, steps + 1, (n,))
    lengths[0] = steps  # one full sequence: the padded output keeps all steps
    return lengths


def run(prefix, model, x, lengths, labels, spec, sample, classes, tensors, meta):
    # Random parameters in float32 (what graft stores), then float64 for the arithmetic.
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.uniform_(-0.6, 0.6)
            if name == "embedding.weight":
                p[0] = 0
    model.double()
    names = list(model.state_dict().keys())
    for name, p in model.state_dict().items():
        tensors[f"{prefix}.param.{name}"] = p.clone()
    tensors[f"{prefix}.x"] = x.clone()
    tensors[f"{prefix}.lengths"] = lengths.clone()
    tensors[f"{prefix}.labels"] = labels.clone()
    feed = x.long().squeeze(-1) if prefix == "lstm" else x.double()
    opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
    for step in range(ADAM_STEPS):
        opt.zero_grad()
        logits = model(feed, lengths)
        loss = F.cross_entropy(logits, labels.long())
        loss.backward()
        if step == 0:
            tensors[f"{prefix}.logits"] = logits.detach().clone()
            tensors[f"{prefix}.loss"] = loss.detach().reshape(1).clone()
            for name, p in model.named_parameters():
                tensors[f"{prefix}.grad.{name}"] = p.grad.clone()
        opt.step()
    for name, p in model.named_parameters():
        tensors[f"{prefix}.after.{name}"] = p.detach().clone()
    meta[f"{prefix}.spec"] = spec
    meta[f"{prefix}.sample"] = ",".join(str(d) for d in sample)
    meta[f"{prefix}.classes"] = classes
    meta[f"{prefix}.names"] = ",".join(names)


def main():
    torch.manual_seed(17)
    tensors, meta = {}, {"generator": "tests/golden/make_sequence_model.py", "torch_version": torch.__version__,
                         "adam_lr": ADAM_LR, "adam_steps": ADAM_STEPS}
    n, steps = 4, 7
    lengths = random_lengths(n, steps)
    ids = torch.randint(1, 13, (n, steps))
    ids[1, 1] = 0  # a padding token inside a sequence: zero features, no gradient
    for b in range(n):
        ids[b, lengths[b]:] = 0
    run("lstm", LstmModel(), ids.unsqueeze(-1).float(), lengths, torch.randint(0, 4, (n,)).float(),
        "embedding:13x6,pad:0,lstm:5x2,bi,last,dense:N", (steps, 1), 4, tensors, meta)

    n, steps = 5, 6
    lengths = random_lengths(n, steps)
    x = torch.randn(n, steps, 3)
    for b in range(n):
        x[b, lengths[b]:] = 0
    run("gru", GruModel(), x, lengths, torch.randint(0, 3, (n,)).float(), "gru:4,mean,dense:N", (steps, 3), 3,
        tensors, meta)

    n, steps = 4, 5  # drawn after the two above, which stay as they were
    lengths = random_lengths(n, steps)
    x = torch.randn(n, steps, 3)
    for b in range(n):
        x[b, lengths[b]:] = 0
    run("flatten", FlattenModel(steps), x, lengths, torch.randint(0, 3, (n,)).float(), "lstm:4,bi,flatten,dense:N",
        (steps, 3), 3, tensors, meta)
    write_safetensors(OUT, tensors, meta)


if __name__ == "__main__":
    main()
