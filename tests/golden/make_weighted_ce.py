#!/usr/bin/python3
# Writes tests/fixtures/golden_weighted_ce.safetensors: PyTorch's class-weighted
# cross-entropy (with and without label smoothing), its value and logits gradient, for
# tests/weighted_loss_test.cpp. Run with Debian's python3-torch: /usr/bin/python3 this.py
import os
import torch
from safetensors.torch import save_file

torch.manual_seed(7)
n, c = 9, 5
out = {}
logits = (torch.randn(n, c, dtype=torch.float64) * 3).float()
labels = torch.randint(0, c, (n,))
weights = (torch.rand(c, dtype=torch.float64) * 2 + 0.1).float()
out["logits"], out["labels"], out["weights"] = logits, labels.to(torch.int64), weights
for name, s in (("plain", 0.0), ("smooth", 0.2)):
    z = logits.double().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(z, labels, weight=weights.double(), label_smoothing=s)
    loss.backward()
    out[f"{name}.loss"] = loss.detach().float().reshape(1)
    out[f"{name}.grad"] = z.grad.float()
path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "golden_weighted_ce.safetensors")
save_file({k: v.contiguous() for k, v in out.items()}, path, metadata={"smoothing": "0.0,0.2"})
