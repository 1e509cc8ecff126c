// Sequence pooling over time: [N, steps, F] -> [N, F], the last step of each sequence (its
// length - 1; for the reverse half of a bidirectional layer's output, step 0, where that
// direction ends) or the mean over its steps (ExecContext::lengths; none: every step); or
// flatten: [N, steps * F], every step side by side for the head to read, the steps past a
// sequence's length zero (the readout that lets a frozen recurrent base compete; docs/recipes.md).
#pragma once
#include "kernels/ops.h"
#include "runtime/layer.h"

namespace graft {

class SequencePool final : public Layer {
 public:
  // reverse_half: the input is a bidirectional layer's output, its second half the reverse direction's.
  SequencePool(std::string name, SequencePoolMode mode, bool reverse_half = false);
  std::string kind() const override;
  std::string describe() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  bool reads_sequence_lengths() const override { return true; }
  bool backward_reads_inputs() const override { return false; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;

 private:
  SequencePoolGeometry geometry(const Shape& in) const;
  SequencePoolMode mode_;
  bool reverse_half_;
};

}  // namespace graft
