// AdaptiveAvgPool2d.
#include "layers/adaptive_pool.h"

#include "kernels/ops.h"
#include "base/error.h"
#include "runtime/onnx/graph.h"

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

std::string AdaptiveAvgPool2d::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  const Shape& in = a.input_shapes.at(0);
  const int64_t h = in[1], w = in[2], c = in[3];
  if (out_h_ == 1 && out_w_ == 1) {
    graph.add_node("GlobalAveragePool", {a.inputs.at(0)}, {a.output});
    return a.output;
  }
  if (h % out_h_ == 0 && w % out_w_ == 0) {  // equal windows that tile the input
    const int64_t kh = h / out_h_, kw = w / out_w_;
    graph.add_node("AveragePool", {a.inputs.at(0)}, {a.output},
                   {onnx_attr("kernel_shape", {kh, kw}), onnx_attr("strides", {kh, kw})});
    return a.output;
  }
  // Otherwise each output is a weighted sum of the input's positions: [N, C, H*W] x P,
  // P[H*W, out_h*out_w] holding 1/window size where a window covers a position.
  const int64_t outs = int64_t{out_h_} * out_w_;
  std::vector<float> p(size_t(h * w * outs), 0.0f);
  for (int i = 0; i < out_h_; ++i)
    for (int j = 0; j < out_w_; ++j) {
      const int y0 = cpu::adaptive_start(i, int(h), out_h_), y1 = cpu::adaptive_end(i, int(h), out_h_);
      const int x0 = cpu::adaptive_start(j, int(w), out_w_), x1 = cpu::adaptive_end(j, int(w), out_w_);
      const float share = 1.0f / float((y1 - y0) * (x1 - x0));
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) p[size_t((y * w + x) * outs + i * out_w_ + j)] = share;
    }
  const std::string flat = a.output + "/positions", summed = a.output + "/pooled";
  graph.add_node("Reshape", {a.inputs.at(0), graph.add_int64_initializer(a.output + "/positions_shape", {0, c, h * w})},
                 {flat});
  graph.add_node("MatMul", {flat, graph.add_initializer(a.output + "/pooling_matrix", {h * w, outs}, p.data())}, {summed});
  graph.add_node("Reshape", {summed, graph.add_int64_initializer(a.output + "/output_shape", {0, c, out_h_, out_w_})},
                 {a.output});
  return a.output;
}

}  // namespace graft
