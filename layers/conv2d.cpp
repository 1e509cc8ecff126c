// Conv2d: geometry, parameters and layouts; the arithmetic is the backend's (ExecContext::kernels()).
#include "layers/conv2d.h"

#include <cmath>

#include "kernels/cpu/conv.h"
#include "kernels/ops.h"
#include "base/error.h"
#include "runtime/onnx/graph.h"

namespace graft {

Conv2d::Conv2d(std::string name, int in_channels, Conv2dOptions o)
    : Layer(std::move(name)), in_channels_(in_channels), o_(o) {
  if (in_channels < 1 || o.out_channels < 1 || o.kernel < 1 || o.stride < 1 || o.padding < 0)
    fail("layer ", this->name(), ": invalid conv2d settings (in ", in_channels, ", out ", o.out_channels,
         ", kernel ", o.kernel, ", stride ", o.stride, ", padding ", o.padding, ")");
}

std::string Conv2d::describe() const {
  return detail::concat("conv2d ", o_.kernel, "x", o_.kernel, " ", in_channels_, "->", o_.out_channels,
                        o_.stride != 1 ? detail::concat(" stride ", o_.stride) : std::string(),
                        o_.padding ? detail::concat(" pad ", o_.padding) : std::string());
}

Conv2dGeometry Conv2d::geometry(const Shape& in) const {
  Conv2dGeometry g;
  g.n = static_cast<int>(in[0]);
  g.h = static_cast<int>(in[1]);
  g.w = static_cast<int>(in[2]);
  g.c_in = static_cast<int>(in[3]);
  g.c_out = o_.out_channels;
  g.kh = g.kw = o_.kernel;
  g.stride = o_.stride;
  g.pad = o_.padding;
  return g;
}

Shape Conv2d::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (in.rank() != 4 || in[3] != in_channels_)
    fail("layer ", name(), " (", describe(), ") expects input [N, H, W, ", in_channels_, "], got ", in.str());
  const auto g = geometry(in);
  if (in[1] + 2 * o_.padding < o_.kernel || in[2] + 2 * o_.padding < o_.kernel)
    fail("layer ", name(), " (", describe(), "): input ", in.str(), " is smaller than the kernel; use a larger --input");
  return Shape{in[0], g.out_h(), g.out_w(), o_.out_channels};
}

std::vector<ParamSpec> Conv2d::param_specs() const {
  const int64_t fan_in = int64_t{in_channels_} * o_.kernel * o_.kernel;
  std::vector<ParamSpec> specs{{"weight",
                                Shape{o_.out_channels, o_.kernel, o_.kernel, in_channels_},
                                Shape{o_.out_channels, in_channels_, o_.kernel, o_.kernel},
                                ParamInit::UniformFanIn, fan_in}};
  if (o_.bias)
    specs.push_back({"bias", Shape{o_.out_channels}, Shape{o_.out_channels}, ParamInit::UniformFanIn, fan_in});
  if (kaiming_fan_out_) {
    const int64_t fan_out = int64_t{o_.out_channels} * o_.kernel * o_.kernel;
    specs[0].init = ParamInit::Normal;
    specs[0].std = static_cast<float>(std::sqrt(2.0 / double(fan_out)));
    if (o_.bias) specs[1].init = ParamInit::Zeros;
  }
  return specs;
}

size_t Conv2d::workspace_floats(const std::vector<Shape>& inputs) const {
  return cpu::conv2d_workspace_floats(geometry(inputs.at(0)));
}

size_t Conv2d::workspace_floats_for(const std::vector<Shape>& inputs, Ops& ops) const {
  return ops.conv2d_workspace_floats(geometry(inputs.at(0)));
}

void Conv2d::forward(const ForwardArgs& a) {
  const auto g = geometry(a.input_shapes[0]);
  const float* bias = o_.bias ? a.params[1] : nullptr;
  a.ctx->kernels().conv2d_forward(g, a.inputs[0], a.params[0], bias, a.output, a.workspace);
}

void Conv2d::backward(const BackwardArgs& a) {
  const auto g = geometry(a.input_shapes[0]);
  float* dw = a.dparams[0];
  float* db = o_.bias ? a.dparams[1] : nullptr;
  if (dw || db) {
    GRAFT_ASSERT(dw && (db || !o_.bias), "weight and bias of one layer are frozen together");
    a.ctx->kernels().conv2d_backward_filter(g, a.inputs[0], a.doutput, dw, db, a.workspace);
  }
  if (a.dinputs[0]) {
    a.ctx->kernels().conv2d_backward_data(g, a.doutput, a.params[0], a.dinputs[0], a.workspace);
  }
}

// OHWI <-> OIHW for the weight; the bias is the same in both.
void Conv2d::to_checkpoint_layout(size_t index, const float* internal, float* external) const {
  if (index != 0) return Layer::to_checkpoint_layout(index, internal, external);
  const int O = o_.out_channels, K = o_.kernel, I = in_channels_;
  for (int o = 0; o < O; ++o)
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw)
        for (int i = 0; i < I; ++i)
          external[((o * I + i) * K + kh) * K + kw] = internal[((o * K + kh) * K + kw) * I + i];
}

void Conv2d::from_checkpoint_layout(size_t index, const float* external, float* internal) const {
  if (index != 0) return Layer::from_checkpoint_layout(index, external, internal);
  const int O = o_.out_channels, K = o_.kernel, I = in_channels_;
  for (int o = 0; o < O; ++o)
    for (int kh = 0; kh < K; ++kh)
      for (int kw = 0; kw < K; ++kw)
        for (int i = 0; i < I; ++i)
          internal[((o * K + kh) * K + kw) * I + i] = external[((o * I + i) * K + kh) * K + kw];
}

std::string Conv2d::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  std::vector<std::string> inputs{a.inputs.at(0), graph.add_parameter(*this, 0, a.params.at(0))};
  if (o_.bias) inputs.push_back(graph.add_parameter(*this, 1, a.params.at(1)));
  const int64_t k = o_.kernel, s = o_.stride, p = o_.padding;
  graph.add_node("Conv", inputs, {a.output},
                 {onnx_attr("kernel_shape", {k, k}), onnx_attr("strides", {s, s}), onnx_attr("pads", {p, p, p, p}),
                  onnx_attr("dilations", {1, 1}), onnx_attr("group", int64_t{1})});
  return a.output;
}

}  // namespace graft
