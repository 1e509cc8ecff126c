#!/usr/bin/python3
"""Writes tests/fixtures/python_written.safetensors with Python's safetensors library, so
tests/safetensors_test.cpp can check graft reads files the reference implementation wrote.

Values are formulas the test recomputes (no separate expected-values file):
  "features.0.weight"  F32 [2, 3, 4]   v[i] = (i - 12) * 0.25          (i = flat index)
  "features.0.bias"    F64 [5]         v[i] = 1.5 ** i - 3
  "classifier.0.half"  F16 [3, 2]      v[i] = i * 0.5 - 1.25 (exact in F16)
  "step"               I64 [1]         v = [1234567]
  "labels"             I64 [4]         v[i] = i * 100 - 150
  "scalar"             F32 []          v = -7.5
  "empty"              F32 [0, 3]      (no values)
  metadata: {"format": "pt", "epoch": "3", "note": "written by safetensors <version>"}
Run: /usr/bin/python3 tests/golden/make_python_safetensors.py  (needs numpy, safetensors)
"""
import os

import numpy as np
import safetensors
from safetensors.numpy import save_file

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "fixtures", "python_written.safetensors")

tensors = {
    "features.0.weight": ((np.arange(24, dtype=np.float64) - 12) * 0.25).astype(np.float32).reshape(2, 3, 4),
    "features.0.bias": (1.5 ** np.arange(5, dtype=np.float64) - 3).astype(np.float64),
    "classifier.0.half": (np.arange(6, dtype=np.float64) * 0.5 - 1.25).astype(np.float16).reshape(3, 2),
    "step": np.array([1234567], dtype=np.int64),
    "labels": (np.arange(4, dtype=np.int64) * 100 - 150),
    "scalar": np.array(-7.5, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}
metadata = {"format": "pt", "epoch": "3", "note": "written by safetensors " + safetensors.__version__}
save_file(tensors, out, metadata=metadata)
print("wrote", os.path.normpath(out), os.path.getsize(out), "bytes")
