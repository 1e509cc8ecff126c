#!/usr/bin/python3
"""Writes tests/fixtures/golden_rnn.safetensors: PyTorch's recurrent layers, embedding and
sequence pooling at the kernel level, for tests/rnn_kernel_test.cpp.

Run with the system Python (Debian python3-torch 1.13):
    /usr/bin/python3 tests/golden/make_rnn.py
The fixture is committed: CI has no torch. Everything is seeded; all values are random.

Recurrent cases (metadata "<case>" = JSON {cell, batch, steps, input, hidden, layers,
bidirectional, lengths}): nn.LSTM / nn.GRU with batch_first. With lengths the input is packed
(pack_padded_sequence, enforce_sorted=False) and unpacked with total_length = steps, so
padded outputs are 0. Tensors, all float32:
    <case>.x [batch, steps, input], <case>.lengths [batch] (whole numbers; absent without),
    <case>.R [batch, steps, dirs*hidden] (loss = sum(y * R)), <case>.y (the last layer's
    output), <case>.y_l0 (layer 0's output when layers == 2), <case>.dx = dloss/dx,
    <case>.<name> and <case>.grad.<name> for every parameter under PyTorch's names
    (weight_ih_l0, weight_hh_l0_reverse, bias_ih_l1, ...).
embedding (metadata JSON {vocab, dim, padding_idx, count}): embedding.ids [count] (whole
    numbers, some of them padding_idx), embedding.weight, embedding.y, embedding.R,
    embedding.grad.weight.
pool_last / pool_mean (metadata JSON {batch, steps, features, reverse_from}): x, lengths,
    y, R, dx: "last" takes step length-1 for the forward half and step 0 for the reverse
    half; "mean" averages the first `length` steps.
"""
import json
import os
import struct

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "golden_rnn.safetensors")


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
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")


def rnn_case(tensors, metadata, name, cell, batch, steps, inp, hidden, layers, bidirectional, with_lengths):
    module = (nn.LSTM if cell == "lstm" else nn.GRU)(inp, hidden, num_layers=layers, batch_first=True,
                                                      bidirectional=bidirectional)
    for p in module.parameters():  # wider than PyTorch's default so the gates leave their linear range
        nn.init.uniform_(p, -0.6, 0.6)
    dirs = 2 if bidirectional else 1
    x = torch.randn(batch, steps, inp, requires_grad=True)
    lengths = None
    if with_lengths:
        lengths = torch.randint(1, steps + 1, (batch,))
        lengths[0] = steps  # the longest is full
        lengths[1] = 1      # and one has a single step
    R = torch.randn(batch, steps, dirs * hidden)

    def run(inputs, mod):
        if lengths is None:
            return mod(inputs)[0]
        packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(mod(packed)[0], batch_first=True, total_length=steps)[0]

    y = run(x, module)
    (y * R).sum().backward()
    tensors[f"{name}.x"] = x
    tensors[f"{name}.R"] = R
    tensors[f"{name}.y"] = y
    tensors[f"{name}.dx"] = x.grad
    if lengths is not None:
        tensors[f"{name}.lengths"] = lengths.float()
    if layers == 2:  # layer 0's output on its own, as the test's first call writes it
        first = (nn.LSTM if cell == "lstm" else nn.GRU)(inp, hidden, batch_first=True, bidirectional=bidirectional)
        with torch.no_grad():
            for pname, p in first.named_parameters():
                p.copy_(getattr(module, pname))
            tensors[f"{name}.y_l0"] = run(x, first)
    for pname, p in module.named_parameters():
        tensors[f"{name}.{pname}"] = p
        tensors[f"{name}.grad.{pname}"] = p.grad
    metadata[name] = json.dumps({"cell": cell, "batch": batch, "steps": steps, "input": inp, "hidden": hidden,
                                 "layers": layers, "bidirectional": bidirectional, "lengths": with_lengths})


def embedding_case(tensors, metadata):
    vocab, dim, padding_idx, count = 11, 5, 3, 40
    emb = nn.Embedding(vocab, dim, padding_idx=padding_idx)
    ids = torch.randint(0, vocab, (count,))
    ids[::7] = padding_idx
    y = emb(ids)
    R = torch.randn(count, dim)
    (y * R).sum().backward()
    tensors.update({"embedding.ids": ids.float(), "embedding.weight": emb.weight, "embedding.y": y,
                    "embedding.R": R, "embedding.grad.weight": emb.weight.grad})
    metadata["embedding"] = json.dumps({"vocab": vocab, "dim": dim, "padding_idx": padding_idx, "count": count})


def pool_cases(tensors, metadata):
    batch, steps, features, reverse_from = 5, 7, 6, 4
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[0], lengths[1] = steps, 1
    for mode in ("last", "mean"):
        x = torch.randn(batch, steps, features, requires_grad=True)
        rows = []
        for b in range(batch):
            n = int(lengths[b])
            if mode == "last":
                rows.append(torch.cat([x[b, n - 1, :reverse_from], x[b, 0, reverse_from:]]))
            else:
                rows.append(x[b, :n].mean(dim=0))
        y = torch.stack(rows)
        R = torch.randn(batch, features)
        (y * R).sum().backward()
        name = f"pool_{mode}"
        tensors.update({f"{name}.x": x, f"{name}.lengths": lengths.float(), f"{name}.y": y, f"{name}.R": R,
                        f"{name}.dx": x.grad})
        metadata[name] = json.dumps({"batch": batch, "steps": steps, "features": features,
                                     "reverse_from": reverse_from})


def main():
    torch.manual_seed(1717)
    tensors, metadata = {}, {}
    cases = []
    for cell in ("lstm", "gru"):
        for suffix, layers, bidirectional, with_lengths in (("uni", 1, False, False), ("bi", 1, True, False),
                                                            ("uni_len", 1, False, True), ("bi_len", 1, True, True),
                                                            ("bi2_len", 2, True, True)):
            name = f"{cell}_{suffix}"
            rnn_case(tensors, metadata, name, cell, batch=4, steps=6, inp=5, hidden=3, layers=layers,
                     bidirectional=bidirectional, with_lengths=with_lengths)
            cases.append(name)
    metadata["rnn_cases"] = json.dumps(cases)
    embedding_case(tensors, metadata)
    pool_cases(tensors, metadata)
    write_safetensors(OUT, tensors, metadata)


if __name__ == "__main__":
    main()
