// SequencePool: shapes and geometry; the pooling is the backend's.
#include "layers/sequence_pool.h"

#include <vector>

#include "base/error.h"
#include "runtime/onnx/graph.h"

namespace graft {

SequencePool::SequencePool(std::string name, SequencePoolMode mode, bool reverse_half)
    : Layer(std::move(name)), mode_(mode), reverse_half_(reverse_half) {}

std::string SequencePool::kind() const {
  switch (mode_) {
    case SequencePoolMode::Last: return "last";
    case SequencePoolMode::Mean: return "mean";
    case SequencePoolMode::Flatten: return "flatten";
  }
  return "";
}

std::string SequencePool::describe() const {
  switch (mode_) {
    case SequencePoolMode::Last: return reverse_half_ ? "last step (reverse half: first step)" : "last step";
    case SequencePoolMode::Mean: return "mean over steps";
    case SequencePoolMode::Flatten: return "every step, flattened";
  }
  return "";
}

Shape SequencePool::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (in.rank() != 3)
    fail("layer ", name(), " (", describe(), ") pools a sequence [N, steps, features] over its steps, got ", in.str(),
         "; put it after an lstm, gru or embedding");
  if (reverse_half_ && in[2] % 2 != 0)
    fail("layer ", name(), ": a bidirectional layer's output has an even number of features, got ", in.str());
  if (mode_ == SequencePoolMode::Flatten) return Shape{in[0], in[1] * in[2]};
  return Shape{in[0], in[2]};
}

SequencePoolGeometry SequencePool::geometry(const Shape& in) const {
  SequencePoolGeometry g;
  g.mode = mode_;
  g.batch = static_cast<int>(in[0]);
  g.steps = static_cast<int>(in[1]);
  g.features = static_cast<int>(in[2]);
  g.reverse_from = reverse_half_ ? g.features / 2 : g.features;
  return g;
}

void SequencePool::forward(const ForwardArgs& a) {
  a.ctx->kernels().sequence_pool_forward(geometry(a.input_shapes[0]), a.ctx->lengths, a.inputs[0], a.output);
}

void SequencePool::backward(const BackwardArgs& a) {
  if (!a.dinputs[0]) return;
  a.ctx->kernels().sequence_pool_backward(geometry(a.input_shapes[0]), a.ctx->lengths, a.doutput, a.dinputs[0]);
}

// Masks over the steps from the lengths: x [N, steps, F] times a 0/1 mask, summed over the
// steps (last: step length-1, for a reverse half step 0; mean: the first length steps, then
// divided by the length) or reshaped (flatten: the first length steps kept).
std::string SequencePool::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  if (a.lengths.empty()) fail("graft export: ", name(), " needs the sequences' lengths as a graph input");
  const Shape& in = a.input_shapes.at(0);
  const int64_t steps = in[1], features = in[2], reverse_from = reverse_half_ ? features / 2 : features;
  const std::string x = a.inputs.at(0), at = a.output + "/";
  std::vector<float> step_index(static_cast<size_t>(steps));
  for (int64_t t = 0; t < steps; ++t) step_index[size_t(t)] = float(t);
  const std::string t = graph.add_initializer(at + "step_index", {1, steps, 1}, step_index.data());
  graph.add_node("Cast", {a.lengths}, {at + "lengths"}, {onnx_attr("to", int64_t{OnnxGraph::kFloat})});
  const std::string length = at + "length";  // [N, 1, 1]
  graph.add_node("Reshape", {at + "lengths", graph.add_int64_initializer(at + "length_shape", {-1, 1, 1})}, {length});
  const auto sum_over_steps = [&](const std::string& mask, const std::string& out) {
    graph.add_node("Mul", {x, mask}, {at + "masked"});
    graph.add_node("ReduceSum", {at + "masked", graph.add_int64_initializer(at + "steps_axis", {1})}, {out},
                   {onnx_attr("keepdims", int64_t{0})});
  };
  if (mode_ == SequencePoolMode::Last) {
    const float one = 1.0f;
    graph.add_node("Sub", {length, graph.add_initializer(at + "one", {}, &one)}, {at + "last_index"});
    graph.add_node("Equal", {t, at + "last_index"}, {at + "is_last"});
    graph.add_node("Cast", {at + "is_last"}, {at + "last"}, {onnx_attr("to", int64_t{OnnxGraph::kFloat})});
    // Forward features read the last step, reverse ones step 0: last * forward + first_reverse.
    std::vector<float> forward(static_cast<size_t>(features)), first_reverse(static_cast<size_t>(steps * features), 0.0f);
    for (int64_t f = 0; f < features; ++f) {
      forward[size_t(f)] = f < reverse_from ? 1.0f : 0.0f;
      first_reverse[size_t(f)] = 1.0f - forward[size_t(f)];
    }
    graph.add_node("Mul", {at + "last", graph.add_initializer(at + "forward_features", {1, 1, features}, forward.data())},
                   {at + "last_forward"});
    graph.add_node("Add",
                   {at + "last_forward", graph.add_initializer(at + "first_reverse", {1, steps, features}, first_reverse.data())},
                   {at + "mask"});
    sum_over_steps(at + "mask", a.output);
    return a.output;
  }
  graph.add_node("Less", {t, length}, {at + "is_kept"});
  graph.add_node("Cast", {at + "is_kept"}, {at + "kept"}, {onnx_attr("to", int64_t{OnnxGraph::kFloat})});
  if (mode_ == SequencePoolMode::Mean) {
    sum_over_steps(at + "kept", at + "sum");
    graph.add_node("Reshape", {at + "lengths", graph.add_int64_initializer(at + "divisor_shape", {-1, 1})},
                   {at + "divisor"});
    graph.add_node("Div", {at + "sum", at + "divisor"}, {a.output});
    return a.output;
  }
  graph.add_node("Mul", {x, at + "kept"}, {at + "masked"});
  graph.add_node("Reshape", {at + "masked", graph.add_int64_initializer(at + "output_shape", {0, steps * features})},
                 {a.output});
  return a.output;
}

}  // namespace graft
