// AdaptiveAvgPool2d.
#include "layers/adaptive_pool.h"

#include "kernels/ops.h"
#include "base/error.h"

namespace graft {

AdaptiveAvgPool2d::AdaptiveAvgPool2d(std::string name, int out_h, int out_w)
    : Layer(std::move(name)), out_h_(out_h), out_w_(out_w) {
  if (out_h < 1 || out_w < 1)
    fail("layer ", this->name(), ": adaptive average pool needs a positive output size, got ", out_h, "x", out_w);
}

std::string AdaptiveAvgPool2d::describe() const {
  return detail::concat("adaptive avgpool to ", out_h_, "x", out_w_);
}

cpu::AdaptivePoolGeometry AdaptiveAvgPool2d::geometry(const Shape& in) const {
  cpu::AdaptivePoolGeometry g;
  g.n = static_cast<int>(in[0]);
  g.h = static_cast<int>(in[1]);
  g.w = static_cast<int>(in[2]);
  g.c = static_cast<int>(in[3]);
  g.out_h = out_h_;
  g.out_w = out_w_;
  return g;
}

Shape AdaptiveAvgPool2d::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (in.rank() != 4 || in[1] < 1 || in[2] < 1)
    fail("layer ", name(), " (", describe(), ") expects a non-empty NHWC input, got ", in.str());
  return Shape{in[0], out_h_, out_w_, in[3]};
}

void AdaptiveAvgPool2d::forward(const ForwardArgs& a) {
  a.ctx->kernels().adaptive_avgpool2d_forward(geometry(a.input_shapes[0]), a.inputs[0], a.output);
}

void AdaptiveAvgPool2d::backward(const BackwardArgs& a) {
  a.ctx->kernels().adaptive_avgpool2d_backward(geometry(a.input_shapes[0]), a.doutput, a.dinputs[0]);
}

}  // namespace graft
