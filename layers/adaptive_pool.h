// AdaptiveAvgPool2d: [N, H, W, C] -> [N, out_h, out_w, C] with PyTorch's window formula
// (kernels/cpu/adaptive_pool.h). VGG's avgpool is AdaptiveAvgPool2d((7, 7)): the identity
// at 224x224 input, a replication of the 1x1 feature map at 32x32.
#pragma once
#include "kernels/cpu/adaptive_pool.h"
#include "runtime/layer.h"

namespace graft {

class AdaptiveAvgPool2d final : public Layer {
 public:
  AdaptiveAvgPool2d(std::string name, int out_h, int out_w);
  std::string kind() const override { return "adaptive_avgpool2d"; }
  std::string describe() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  bool backward_reads_inputs() const override { return false; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  // GlobalAveragePool, AveragePool when the windows tile the input, else a MatMul with
  // the pooling matrix (ONNX has no adaptive pool).
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
  cpu::AdaptivePoolGeometry geometry(const Shape& input) const;

 private:
  int out_h_, out_w_;
};

}  // namespace graft
