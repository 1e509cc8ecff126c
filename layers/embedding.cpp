// Embedding: shapes, the table's initialisation (N(0, 1), PyTorch's) and the ids' check; the
// lookup is the backend's.
#include "layers/embedding.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/error.h"
#include "kernels/ops.h"
#include "runtime/onnx/graph.h"

namespace graft {

Embedding::Embedding(std::string name, int vocab, int dim, int padding_idx)
    : Layer(std::move(name)), vocab_(vocab), dim_(dim), padding_idx_(padding_idx) {
  if (vocab < 1 || dim < 1) fail("layer ", this->name(), ": embedding needs a positive vocabulary and size, got ", vocab, "x", dim);
  if (padding_idx < -1 || padding_idx >= vocab)
    fail("layer ", this->name(), ": padding index ", padding_idx, " is outside the vocabulary 0..", vocab - 1);
}

std::string Embedding::describe() const {
  return detail::concat("embedding ", vocab_, "x", dim_, padding_idx_ >= 0 ? detail::concat(" pad ", padding_idx_) : "");
}

Shape Embedding::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if (!(in.rank() == 2 || (in.rank() == 3 && in[2] == 1)))
    fail("layer ", name(), " (", describe(), ") expects token ids [N, steps, 1], got ", in.str(),
         "; an embedding reads one id per step (sequence data of token ids)");
  return Shape{in[0], in[1], dim_};
}

std::vector<ParamSpec> Embedding::param_specs() const {
  ParamSpec w{"weight", Shape{vocab_, dim_}, Shape{vocab_, dim_}, ParamInit::Normal, 1};
  w.std = 1.0f;
  w.zero_row = padding_idx_;
  return {w};
}

void Embedding::check_model_input(const float* host, const Shape& shape) const {
  const int64_t steps = shape[1];
  for (int64_t i = 0; i < shape[0] * steps; ++i) {
    const float id = host[i];
    if (!(id >= 0.0f && id < float(vocab_)) || id != std::floor(id))
      fail("layer ", name(), " (", describe(), "): token id ", id, " at step ", i % steps, " of example ", i / steps,
           " in the batch is outside the vocabulary 0..", vocab_ - 1,
           "; the data has more tokens than the model's embedding (embedding:VOCABxDIM)");
  }
}

void Embedding::forward(const ForwardArgs& a) {
  // On the CPU the ids are readable here: check them even when the executor did not.
  if (a.ctx->kernels().device() == Device::CPU) check_model_input(a.inputs[0], a.input_shapes[0]);
  const int64_t count = a.input_shapes[0][0] * a.input_shapes[0][1];
  a.ctx->kernels().embedding_forward(count, vocab_, dim_, padding_idx_, a.inputs[0], a.params[0], a.output);
}

void Embedding::backward(const BackwardArgs& a) {
  // Ids have no gradient: only the table's.
  if (a.dinputs[0]) a.ctx->kernels().zero(a.dinputs[0], size_t(a.input_shapes[0].numel()) * sizeof(float));
  if (!a.dparams[0]) return;
  const int64_t count = a.input_shapes[0][0] * a.input_shapes[0][1];
  a.ctx->kernels().embedding_backward(count, vocab_, dim_, padding_idx_, a.inputs[0], a.doutput, a.dparams[0]);
}

// Gather from the table by the ids (floats [N, steps, 1] -> int64 [N, steps]); the padding
// row is written as zeros, as graft's lookup gives them whatever the table holds.
std::string Embedding::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  std::vector<float> table(a.params.at(0), a.params.at(0) + int64_t{vocab_} * dim_);
  if (padding_idx_ >= 0) std::fill_n(table.begin() + int64_t{padding_idx_} * dim_, dim_, 0.0f);
  const std::string ids = a.output + "/ids", whole = a.output + "/ids_int64";
  graph.add_node("Reshape", {a.inputs.at(0), graph.add_int64_initializer(a.output + "/ids_shape", {0, -1})}, {ids});
  graph.add_node("Cast", {ids}, {whole}, {onnx_attr("to", int64_t{OnnxGraph::kInt64})});
  graph.add_node("Gather", {graph.add_initializer(name() + ".weight", {vocab_, dim_}, table.data()), whole}, {a.output},
                 {onnx_attr("axis", int64_t{0})});
  return a.output;
}

}  // namespace graft
