// Add: the residual connection, y = a + b for two inputs of one shape. Backward passes dy
// unchanged to each input that needs a gradient (the executor sums the gradients of a node
// with several consumers).
#pragma once
#include "runtime/layer.h"

namespace graft {

class Add final : public Layer {
 public:
  using Layer::Layer;
  std::string kind() const override { return "add"; }
  std::string describe() const override { return "add"; }
  int num_inputs() const override { return 2; }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  bool backward_reads_inputs() const override { return false; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
};

}  // namespace graft
