// Conv2d: NHWC input, weights stored OHWI internally (checkpoints: PyTorch's OIHW).
#pragma once
#include "kernels/cpu/geometry.h"
#include "runtime/layer.h"

namespace graft {

struct Conv2dOptions {
  int out_channels = 1;
  int kernel = 3;
  int stride = 1;
  int padding = 0;
  bool bias = true;
};

class Conv2d final : public Layer {
 public:
  Conv2d(std::string name, int in_channels, Conv2dOptions o);
  std::string kind() const override { return "conv2d"; }
  bool is_gemm() const override { return true; }
  std::string describe() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  std::vector<ParamSpec> param_specs() const override;
  size_t workspace_floats(const std::vector<Shape>& inputs) const override;
  size_t workspace_floats_for(const std::vector<Shape>& inputs, Ops& ops) const override;
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  void to_checkpoint_layout(size_t index, const float* internal, float* external) const override;
  void from_checkpoint_layout(size_t index, const float* external, float* internal) const override;
  // Conv with PyTorch's OIHW weight.
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;

  Conv2dGeometry geometry(const Shape& input) const;
  // torchvision's VGG and ResNet initialisation instead of PyTorch's Conv2d default:
  // weight from kaiming_normal_(mode='fan_out', nonlinearity='relu'), i.e. N(0, 2 / fan_out)
  // with fan_out = out_channels * kernel * kernel, and a zero bias.
  void use_kaiming_normal_fan_out() { kaiming_fan_out_ = true; }

 private:
  int in_channels_;
  Conv2dOptions o_;
  bool kaiming_fan_out_ = false;
};

}  // namespace graft
