#!/usr/bin/python3
"""Writes tests/fixtures/golden_bf16.safetensors: PyTorch's float32 -> bfloat16 rounding of
random floats, so tests/bf16_test.cpp can check graft's rounding against PyTorch itself.

  "x"  F32  [32768]  random floats: uniform bit patterns (every exponent, subnormals, inf,
                     NaN), subnormals, uniform in [-4, 4], exact ties and their neighbours
  "y"  BF16 [32768]  x.to(torch.bfloat16)
  metadata: {"torch": <version>, "seed": <seed>}
NaN: torch 1.13's vectorized CPU conversion writes 0xFFFF where c10::BFloat16 (and graft)
write 0x7FC0; both are NaN, and the test only asks for a NaN there.
Run: /usr/bin/python3 tests/golden/make_bf16.py  (needs numpy, torch, safetensors)
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

SEED = 20240611
rng = np.random.default_rng(SEED)
n = 32768
q = n // 5
parts = [
    rng.integers(0, 2**32, q, dtype=np.uint64).astype(np.uint32),                       # any bits
    rng.integers(0, 2**32, q, dtype=np.uint64).astype(np.uint32) & np.uint32(0x807FFFFF),  # subnormal
    rng.uniform(-4, 4, q).astype(np.float32).view(np.uint32),
    (rng.integers(0, 2**16, q, dtype=np.uint32) << 16) | np.uint32(0x8000),             # exact ties
]
edges = rng.choice(np.array([0x7FFF, 0x8001, 0x0000, 0xFFFF, 0x0001], dtype=np.uint32), n - 4 * q)
parts.append((rng.integers(0, 2**16, n - 4 * q, dtype=np.uint32) << 16) | edges)
x = torch.from_numpy(np.concatenate(parts).astype(np.uint32).view(np.float32).copy())
y = x.to(torch.bfloat16)

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "fixtures", "golden_bf16.safetensors")
save_file({"x": x, "y": y}, out, metadata={"torch": torch.__version__, "seed": str(SEED)})
print("wrote", os.path.normpath(out), os.path.getsize(out), "bytes")
