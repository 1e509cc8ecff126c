// Export of a model to ONNX: every node's inference form (Layer::export_onnx), in the
// model's order, from one NCHW float32 input named "input" [N, C, H, W] to one output:
// "logits" [N, K] for a classifier (no softmax), or "features" [N, C, h, w] for a backbone
// without a top. A sequence model (a layer reads the sequences' lengths) takes "input"
// [N, steps, features] (an image [H, W, C] read by rows: [N, H, W*C]; token ids as floats
// [N, steps, 1]) and "lengths", int32 [N], each example's steps (1..steps). Tensors carry the
// node names, initializers the checkpoint's names.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "runtime/model.h"
#include "runtime/onnx/graph.h"

namespace graft {

// ONNX's dimensions of graft's shape: NHWC becomes NCHW, and the batch is symbolic.
inline std::vector<int64_t> onnx_dims(const Shape& graft_shape) {
  if (graft_shape.rank() == 4) return {OnnxGraph::kBatch, graft_shape[3], graft_shape[1], graft_shape[2]};
  std::vector<int64_t> dims{OnnxGraph::kBatch};
  for (int i = 1; i < graft_shape.rank(); ++i) dims.push_back(graft_shape[i]);
  return dims;
}

// The model's graph, with `metadata` as its metadata_props. A layer without an ONNX form
// throws, naming itself (Layer::export_onnx).
// `logits`: a 2-D output is the classifier's "logits" (else "features": a sequence backbone's).
inline OnnxGraph model_to_onnx(const Model& model, const std::vector<std::pair<std::string, std::string>>& metadata,
                               const std::string& doc, bool logits = true) {
  OnnxGraph graph;
  const Shape& sample = model.sample_shape();  // [H, W, C], or [steps, features]
  bool sequences = false;
  for (const Node& node : model.nodes()) sequences = sequences || node.layer->reads_sequence_lengths();
  if (sequences) {
    graph.add_input("input", {OnnxGraph::kBatch, sample[0], sample.numel() / sample[0]});
    graph.add_input("lengths", {OnnxGraph::kBatch}, OnnxGraph::kInt32);
  } else {
    graph.add_input("input", onnx_dims(Shape{1, sample[0], sample[1], sample[2]}));
  }
  const std::vector<Shape> shapes = model.infer_shapes(1);
  const float* host = model.host_params();
  const int last = model.output_node();
  const std::string output = logits && shapes[size_t(last)].rank() == 2 ? "logits" : "features";
  std::vector<std::string> names(size_t(model.num_nodes()));
  for (int n = 0; n < model.num_nodes(); ++n) {
    const Node& node = model.nodes()[size_t(n)];
    OnnxNodeArgs args;
    if (sequences) args.lengths = "lengths";
    for (int i : node.inputs) args.inputs.push_back(i == kModelInput ? "input" : names[size_t(i)]);
    args.input_shapes = model.node_input_shapes(n, shapes, 1);
    args.output = n == last ? output : node.name;
    if (graph.defines(args.output) || (n != last && args.output == output))
      args.output = node.name + "/output";  // a node named "input" or "logits"
    args.output_shape = shapes[size_t(n)];
    for (int p : model.node_params(n)) args.params.push_back(host + model.params()[size_t(p)].offset);
    names[size_t(n)] = node.layer->export_onnx(graph, args);
  }
  if (names[size_t(last)] != output) graph.add_node("Identity", {names[size_t(last)]}, {output});  // ends in dropout
  graph.add_output(output, onnx_dims(shapes[size_t(last)]));
  for (const auto& [key, value] : metadata) graph.add_metadata(key, value);
  graph.set_doc(doc);
  return graph;
}

}  // namespace graft
