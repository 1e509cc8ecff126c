// Embedding (PyTorch's nn.Embedding): token ids -> rows of a table, weight [vocab, dim].
// Input [N, steps, 1] (or [N, steps]) of whole-number ids stored as floats; output
// [N, steps, dim]. The padding_idx row is zero in the output, gets no gradient and starts at
// zero, as PyTorch's. Ids outside [0, vocab) are refused on the host before any kernel runs.
#pragma once
#include "runtime/layer.h"

namespace graft {

class Embedding final : public Layer {
 public:
  Embedding(std::string name, int vocab, int dim, int padding_idx = -1);
  std::string kind() const override { return "embedding"; }
  std::string describe() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  std::vector<ParamSpec> param_specs() const override;
  bool backward_reads_inputs() const override { return true; }
  void check_model_input(const float* host, const Shape& shape) const override;
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;

  int vocab() const { return vocab_; }
  int dim() const { return dim_; }
  int padding_idx() const { return padding_idx_; }

 private:
  int vocab_, dim_, padding_idx_;
};

}  // namespace graft
