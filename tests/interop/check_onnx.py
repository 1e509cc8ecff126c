"""Checks an ONNX file graft exported (tests/onnx_export_test.cpp): onnx.checker's full check
(with shape inference), the opset, no Dropout or training-mode BatchNormalization left, the
metadata, and onnxruntime on the CPU against the logits graft computed for the same inputs.

usage: check_onnx.py MODEL.onnx INPUTS.f32 EXPECTED.f32 N [LENGTHS.i32]
  INPUTS.f32    N NCHW float32 inputs, raw little-endian (the model's input shape; a
                sequence model's [N, steps, features])
  EXPECTED.f32  graft's outputs for them, raw float32
  LENGTHS.i32   a sequence model's second input: N int32 lengths, raw little-endian
Prints one JSON line (relative error, metadata, op types); exits 1 when a check fails."""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def fail(why):
    print("check_onnx: " + why)
    sys.exit(1)


def main():
    path, inputs_path, expected_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lengths_path = sys.argv[5] if len(sys.argv) > 5 else None
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("", opsets.get("ai.onnx")) != 17:
        fail("opset is %s, not 17" % opsets)
    ops = sorted({node.op_type for node in model.graph.node})
    if "Dropout" in ops:
        fail("a Dropout node is left in the graph")
    for node in model.graph.node:
        for a in node.attribute:
            if node.op_type == "BatchNormalization" and a.name == "training_mode" and a.i != 0:
                fail("BatchNormalization %s is in training mode" % node.name)
    metadata = {p.key: p.value for p in model.metadata_props}

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != (2 if lengths_path else 1):
        fail("the graph takes %d inputs (%s), expected %d" % (len(inputs), [i.name for i in inputs],
                                                              2 if lengths_path else 1))
    inp = inputs[0]
    dims = [int(d) for d in inp.shape[1:]]
    if not isinstance(inp.shape[0], str):
        fail("the batch dimension is fixed (%s), not symbolic" % inp.shape[0])
    feed = {inp.name: np.fromfile(inputs_path, dtype="<f4").reshape([n] + dims)}
    if lengths_path:
        if inputs[1].name != "lengths" or inputs[1].type != "tensor(int32)":
            fail("the second input is %s %s, not lengths tensor(int32)" % (inputs[1].name, inputs[1].type))
        feed["lengths"] = np.fromfile(lengths_path, dtype="<i4").reshape([n])
    (got,) = session.run(None, feed)
    expected = np.fromfile(expected_path, dtype="<f4")
    if got.size != expected.size:
        fail("onnxruntime gave %s values (shape %s), graft %s" % (got.size, got.shape, expected.size))
    expected = expected.reshape(got.shape)
    if not np.all(np.isfinite(got)):
        fail("onnxruntime's output has NaN or Inf")
    # The project's rule: max |a - b| / max(max |b|, 1e-6).
    rel = float(np.max(np.abs(got.astype(np.float64) - expected)) / max(float(np.max(np.abs(expected))), 1e-6))
    print(json.dumps({"relative_error": rel, "input": inp.name, "input_shape": [str(d) for d in inp.shape],
                      "output": session.get_outputs()[0].name, "output_shape": list(got.shape),
                      "ops": ops, "metadata": metadata}))
    if rel >= 1e-5:
        fail("relative error %g against graft's outputs is not below 1e-5" % rel)


if __name__ == "__main__":
    main()
