// The parameter-free layers.
#include "layers/simple_layers.h"

#include <algorithm>

#include "kernels/common/elementwise.h"
#include "kernels/ops.h"
#include "base/error.h"
#include "runtime/onnx/graph.h"

namespace graft {

void ReLU::forward(const ForwardArgs& a) { a.ctx->kernels().relu_forward(a.output_shape.numel(), a.inputs[0], a.output); }
void ReLU::backward(const BackwardArgs& a) {
  a.ctx->kernels().relu_backward(a.output_shape.numel(), a.output, a.doutput, a.dinputs[0]);
}

Dropout::Dropout(std::string name, float p) : Layer(std::move(name)), p_(p) {
  if (!(p >= 0.0f && p < 1.0f)) fail("layer ", this->name(), ": dropout rate must be in [0, 1), got ", p);
}
std::string Dropout::describe() const { return detail::concat("dropout ", p_); }
std::string Dropout::training_randomness() const {
  return p_ > 0.0f ? detail::concat("(dropout, p ", p_, ") is random in training") : "";
}

// The mask's counter of this batch's first element in the whole batch (ExecContext::first_row).
static int64_t first_element(const ExecContext& c, const Shape& shape) {
  return shape[0] > 0 ? c.first_row * (shape.numel() / shape[0]) : 0;
}

void Dropout::forward(const ForwardArgs& a) {
  const int64_t n = a.output_shape.numel();
  const ExecContext& c = *a.ctx;
  const int64_t first = first_element(c, a.output_shape);
  if (!c.training || p_ == 0.0f)
    c.kernels().copy(n, a.inputs[0], a.output);
  else if (c.step_counter)
    c.kernels().dropout_forward_at(n, p_, c.seed, c.step_counter, c.node_index, first, a.inputs[0], a.output);
  else
    c.kernels().dropout_forward(n, p_, c.seed, math::layer_stream(c.step, c.node_index), first, a.inputs[0],
                                a.output);
}
void Dropout::backward(const BackwardArgs& a) {
  const int64_t n = a.output_shape.numel();
  const ExecContext& c = *a.ctx;
  const int64_t first = first_element(c, a.output_shape);
  if (!c.training || p_ == 0.0f)
    c.kernels().copy(n, a.doutput, a.dinputs[0]);
  else if (c.step_counter)
    c.kernels().dropout_backward_at(n, p_, c.seed, c.step_counter, c.node_index, first, a.doutput, a.dinputs[0]);
  else
    c.kernels().dropout_backward(n, p_, c.seed, math::layer_stream(c.step, c.node_index), first, a.doutput,
                                 a.dinputs[0]);
}

Shape Flatten::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (in.rank() < 2) fail("layer ", name(), ": flatten needs a batched input, got ", in.str());
  return Shape{in[0], in.numel() / std::max<int64_t>(in[0], 1)};
}
void Flatten::forward(const ForwardArgs& a) {
  a.ctx->kernels().copy(a.output_shape.numel(), a.inputs[0], a.output);
}
void Flatten::backward(const BackwardArgs& a) {
  a.ctx->kernels().copy(a.output_shape.numel(), a.doutput, a.dinputs[0]);
}

Pool2d::Pool2d(std::string name, PoolKind kind, int kernel, int stride, int padding)
    : Layer(std::move(name)), kind_(kind), kernel_(kernel), stride_(stride), padding_(padding) {
  if (kernel < 1 || stride < 1 || padding < 0 || 2 * padding > kernel)
    fail("layer ", this->name(), ": invalid pooling (kernel ", kernel, ", stride ", stride, ", padding ", padding,
         "); padding may be at most half the kernel");
}
std::string Pool2d::describe() const {
  return detail::concat(kind_ == PoolKind::Max ? "maxpool " : "avgpool ", kernel_, "x", kernel_,
                        stride_ != kernel_ ? detail::concat(" stride ", stride_) : std::string(),
                        padding_ ? detail::concat(" pad ", padding_) : std::string());
}
Pool2dGeometry Pool2d::geometry(const Shape& in) const {
  Pool2dGeometry g;
  g.n = static_cast<int>(in[0]);
  g.h = static_cast<int>(in[1]);
  g.w = static_cast<int>(in[2]);
  g.c = static_cast<int>(in[3]);
  g.kh = g.kw = kernel_;
  g.stride = stride_;
  g.pad = padding_;
  return g;
}
Shape Pool2d::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (in.rank() != 4) fail("layer ", name(), " (", describe(), ") expects an NHWC input, got ", in.str());
  if (in[1] + 2 * padding_ < kernel_ || in[2] + 2 * padding_ < kernel_)
    fail("layer ", name(), " (", describe(), "): input ", in.str(), " is smaller than the window; use a larger --input");
  const auto g = geometry(in);
  return Shape{in[0], g.out_h(), g.out_w(), in[3]};
}
void Pool2d::forward(const ForwardArgs& a) {
  const auto g = geometry(a.input_shapes[0]);
  if (kind_ == PoolKind::Max)
    a.ctx->kernels().maxpool2d_forward(g, a.inputs[0], a.output);
  else
    a.ctx->kernels().avgpool2d_forward(g, a.inputs[0], a.output);
}
void Pool2d::backward(const BackwardArgs& a) {
  const auto g = geometry(a.input_shapes[0]);
  if (kind_ == PoolKind::Max)
    a.ctx->kernels().maxpool2d_backward(g, a.inputs[0], a.doutput, a.dinputs[0]);
  else
    a.ctx->kernels().avgpool2d_backward(g, a.doutput, a.dinputs[0]);
}

Shape GlobalAvgPool::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (in.rank() != 4) fail("layer ", name(), ": global average pool expects an NHWC input, got ", in.str());
  return Shape{in[0], in[3]};
}
void GlobalAvgPool::forward(const ForwardArgs& a) {
  const Shape& s = a.input_shapes[0];
  a.ctx->kernels().global_avgpool_forward(int(s[0]), int(s[1]), int(s[2]), int(s[3]), a.inputs[0], a.output);
}
void GlobalAvgPool::backward(const BackwardArgs& a) {
  const Shape& s = a.input_shapes[0];
  a.ctx->kernels().global_avgpool_backward(int(s[0]), int(s[1]), int(s[2]), int(s[3]), a.doutput, a.dinputs[0]);
}

std::string ReLU::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  graph.add_node("Relu", {a.inputs.at(0)}, {a.output});
  return a.output;
}
std::string Dropout::export_onnx(OnnxGraph&, const OnnxNodeArgs& a) const { return a.inputs.at(0); }
// Flatten of NCHW gives (c, h, w) order: PyTorch's, which the next layer's exported weights use.
std::string Flatten::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  graph.add_node("Flatten", {a.inputs.at(0)}, {a.output}, {onnx_attr("axis", int64_t{1})});
  return a.output;
}
std::string Pool2d::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  const int64_t k = kernel_, s = stride_, p = padding_;
  std::vector<OnnxAttribute> attrs{onnx_attr("kernel_shape", {k, k}), onnx_attr("strides", {s, s}),
                                   onnx_attr("pads", {p, p, p, p})};
  if (kind_ == PoolKind::Average) attrs.push_back(onnx_attr("count_include_pad", int64_t{1}));  // as graft's kernel
  graph.add_node(kind_ == PoolKind::Max ? "MaxPool" : "AveragePool", {a.inputs.at(0)}, {a.output}, attrs);
  return a.output;
}
// graft's [N, C]; ONNX's pool keeps [N, C, 1, 1], flattened to match.
std::string GlobalAvgPool::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  const std::string pooled = a.output + "/pooled";
  graph.add_node("GlobalAveragePool", {a.inputs.at(0)}, {pooled});
  graph.add_node("Flatten", {pooled}, {a.output}, {onnx_attr("axis", int64_t{1})});
  return a.output;
}

}  // namespace graft
