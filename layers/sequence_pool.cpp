// SequencePool: shapes and geometry; the pooling is the backend's.
#include "layers/sequence_pool.h"

#include "base/error.h"

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

std::string SequencePool::export_onnx(OnnxGraph&, const OnnxNodeArgs&) const {
  fail("graft export: ", name(), " (", describe(), ") has no ONNX export yet");
}

}  // namespace graft
