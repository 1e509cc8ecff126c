// Dense: shapes, parameters and the flatten permutation; the arithmetic is the backend's.
#include "layers/dense.h"

#include <algorithm>

#include "kernels/ops.h"
#include "base/error.h"
#include "runtime/onnx/graph.h"

namespace graft {

Dense::Dense(std::string name, int in_features, int out_features, bool bias)
    : Layer(std::move(name)), in_(in_features), out_(out_features), bias_(bias) {
  if (in_features < 1 || out_features < 1)
    fail("layer ", this->name(), ": dense needs positive sizes, got ", in_features, " -> ", out_features);
}

std::string Dense::describe() const { return detail::concat("dense ", in_, "->", out_); }

Shape Dense::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (in.rank() != 2 || in[1] != in_)
    fail("layer ", name(), " (", describe(), ") expects input [N, ", in_, "], got ", in.str(),
         in.rank() == 4 ? "; add a flatten or global average pool before it" : "");
  return Shape{in[0], out_};
}

std::vector<ParamSpec> Dense::param_specs() const {
  std::vector<ParamSpec> specs{{"weight", Shape{out_, in_}, Shape{out_, in_}, ParamInit::UniformFanIn, in_}};
  if (bias_) specs.push_back({"bias", Shape{out_}, Shape{out_}, ParamInit::UniformFanIn, in_});
  if (normal_std_ > 0) {
    specs[0].init = ParamInit::Normal;
    specs[0].std = normal_std_;
    if (bias_) specs[1].init = ParamInit::Zeros;
  }
  return specs;
}

void Dense::forward(const ForwardArgs& a) {
  const int n = static_cast<int>(a.input_shapes[0][0]);
  const float* b = bias_ ? a.params[1] : nullptr;
  a.ctx->kernels().dense_forward(n, in_, out_, a.inputs[0], a.params[0], b, a.output);
}

void Dense::backward(const BackwardArgs& a) {
  const int n = static_cast<int>(a.input_shapes[0][0]);
  float* dw = a.dparams[0];
  float* db = bias_ ? a.dparams[1] : nullptr;
  if (dw) a.ctx->kernels().dense_backward_weights(n, in_, out_, a.inputs[0], a.doutput, dw, db);
  if (a.dinputs[0]) a.ctx->kernels().dense_backward_data(n, in_, out_, a.doutput, a.params[0], a.dinputs[0]);
}

void Dense::bind_flattened_input(int h, int w, int c) { flat_.bind(name(), h, w, c, in_); }

void Dense::to_checkpoint_layout(size_t index, const float* internal, float* external) const {
  if (index != 0 || !flat_.active()) return Layer::to_checkpoint_layout(index, internal, external);
  for (int64_t o = 0; o < out_; ++o)
    for (int64_t j = 0; j < in_; ++j) external[o * in_ + flat_.pytorch_index(j)] = internal[o * in_ + j];
}

void Dense::from_checkpoint_layout(size_t index, const float* external, float* internal) const {
  if (index != 0 || !flat_.active()) return Layer::from_checkpoint_layout(index, external, internal);
  for (int64_t o = 0; o < out_; ++o)
    for (int64_t j = 0; j < in_; ++j) internal[o * in_ + j] = external[o * in_ + flat_.pytorch_index(j)];
}

std::string Dense::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  std::vector<std::string> inputs{a.inputs.at(0), graph.add_parameter(*this, 0, a.params.at(0))};
  if (bias_) inputs.push_back(graph.add_parameter(*this, 1, a.params.at(1)));
  graph.add_node("Gemm", inputs, {a.output}, {onnx_attr("transB", int64_t{1})});
  return a.output;
}

}  // namespace graft
