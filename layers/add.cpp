// Add.
#include "layers/add.h"

#include "kernels/ops.h"
#include "base/error.h"
#include "runtime/onnx/graph.h"

namespace graft {

Shape Add::output_shape(const std::vector<Shape>& inputs) const {
  if (inputs.size() != 2) fail("layer ", name(), ": add takes two inputs, got ", inputs.size());
  if (inputs[0] != inputs[1])
    fail("layer ", name(), ": add needs inputs of one shape, got ", inputs[0].str(), " and ", inputs[1].str());
  return inputs[0];
}

void Add::forward(const ForwardArgs& a) {
  a.ctx->kernels().add(a.output_shape.numel(), a.inputs[0], a.inputs[1], a.output);
}

void Add::backward(const BackwardArgs& a) {
  const int64_t n = a.output_shape.numel();
  for (float* dx : a.dinputs)
    if (dx) a.ctx->kernels().copy(n, a.doutput, dx);
}

std::string Add::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  graph.add_node("Add", {a.inputs.at(0), a.inputs.at(1)}, {a.output});
  return a.output;
}

}  // namespace graft
