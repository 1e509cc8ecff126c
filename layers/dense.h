// Dense (PyTorch's Linear): y = x W^T + b, W [out, in].
// After a Flatten of an NHWC activation the input features are ordered (h, w, c) while
// PyTorch's are (c, h, w); the graph tells the layer the flattened shape (also through dropout,
// relu and other pass-through layers between the two), and the weight's
// columns are permuted at the checkpoint boundary so logits match PyTorch's exactly.
#pragma once
#include "layers/flattened_order.h"
#include "runtime/layer.h"

namespace graft {

class Dense final : public Layer {
 public:
  Dense(std::string name, int in_features, int out_features, bool bias = true);
  std::string kind() const override { return "dense"; }
  bool is_gemm() const override { return true; }
  // The input is a flattened [H, W, C] activation: permute weight columns at the boundary.
  void bind_flattened_input(int h, int w, int c) override;
  std::string describe() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  std::vector<ParamSpec> param_specs() const override;
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  void to_checkpoint_layout(size_t index, const float* internal, float* external) const override;
  void from_checkpoint_layout(size_t index, const float* external, float* internal) const override;
  // Gemm (transB) with PyTorch's weight, whose columns follow an NCHW flatten.
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;

  int in_features() const { return in_; }
  int out_features() const { return out_; }
  // torchvision's VGG classifier instead of PyTorch's Linear default: weight from
  // N(0, std^2) (normal_(0, 0.01)), zero bias.
  void use_normal_init(float std) { normal_std_ = std; }

 private:
  int in_, out_;
  bool bias_;
  float normal_std_ = 0;  // > 0: use_normal_init
  FlattenedOrder flat_;  // the checkpoint's (CHW) columns after a flatten
};

}  // namespace graft
