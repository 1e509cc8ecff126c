// The parameter-free layers: ReLU, Dropout, Flatten, max/average/global-average pooling.
#pragma once
#include "kernels/cpu/geometry.h"
#include "runtime/layer.h"

namespace graft {

class ReLU final : public Layer {
 public:
  using Layer::Layer;
  std::string kind() const override { return "relu"; }
  std::string describe() const override { return "relu"; }
  LayoutRole layout_role() const override { return LayoutRole::PassThrough; }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  bool backward_reads_inputs() const override { return false; }
  bool backward_reads_output() const override { return true; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
};

// Inverted dropout: active only in training; the mask is recomputed in backward from the
// counter-based RNG (seed, step, node), never stored.
class Dropout final : public Layer {
 public:
  Dropout(std::string name, float p);
  std::string kind() const override { return "dropout"; }
  std::string describe() const override;
  LayoutRole layout_role() const override { return LayoutRole::PassThrough; }
  bool draws_random_numbers() const override { return p_ > 0.0f; }
  std::string training_randomness() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  bool backward_reads_inputs() const override { return false; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  // Inference has no dropout: the export leaves it out (its output is its input).
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
  float p() const { return p_; }

 private:
  float p_;
};

// [N, H, W, C] -> [N, H*W*C] in memory order (h, w, c); see Dense for PyTorch's order.
class Flatten final : public Layer {
 public:
  using Layer::Layer;
  std::string kind() const override { return "flatten"; }
  std::string describe() const override { return "flatten"; }
  LayoutRole layout_role() const override { return LayoutRole::Flatten; }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  bool backward_reads_inputs() const override { return false; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
};

enum class PoolKind { Max, Average };

class Pool2d final : public Layer {
 public:
  Pool2d(std::string name, PoolKind kind, int kernel, int stride, int padding);
  std::string kind() const override { return kind_ == PoolKind::Max ? "maxpool2d" : "avgpool2d"; }
  std::string describe() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  bool backward_reads_inputs() const override { return kind_ == PoolKind::Max; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
  Pool2dGeometry geometry(const Shape& input) const;

 private:
  PoolKind kind_;
  int kernel_, stride_, padding_;
};

// [N, H, W, C] -> [N, C].
class GlobalAvgPool final : public Layer {
 public:
  using Layer::Layer;
  std::string kind() const override { return "global_avgpool"; }
  std::string describe() const override { return "global average pool"; }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  bool backward_reads_inputs() const override { return false; }
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
};

}  // namespace graft
