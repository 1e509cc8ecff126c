// Recurrent layers (PyTorch's nn.LSTM and nn.GRU, batch_first=True): one graft layer per
// PyTorch module, num_layers stacked layers of one or both directions, with PyTorch's
// dropout= on every layer's output but the last in training. Parameters are the module's
// state dict, in its order and layouts: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0,
// then the _reverse ones, then l1, ...; all from U(-1/sqrt(hidden), 1/sqrt(hidden)).
// Input [N, steps, features], or an image [N, H, W, C] read as H steps of W*C features (a
// row per step); output [N, steps, directions * hidden], zero at steps past a sequence's
// length (ExecContext::lengths). Each stacked layer is one Ops::rnn_forward; what backward
// needs (each layer's kernel reserve, the outputs between layers, before and after dropout)
// is the node's planned reserve, so a frozen layer that needs no backward keeps nothing.
#pragma once
#include "kernels/ops.h"
#include "runtime/layer.h"

namespace graft {

struct RecurrentOptions {
  RnnCell cell = RnnCell::LSTM;
  int hidden = 1;
  int layers = 1;
  bool bidirectional = false;
  float dropout = 0.0f;  // between stacked layers, in training
};

class Recurrent final : public Layer {
 public:
  Recurrent(std::string name, int input_features, RecurrentOptions o);
  std::string kind() const override { return options_.cell == RnnCell::LSTM ? "lstm" : "gru"; }
  std::string describe() const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  std::vector<ParamSpec> param_specs() const override;
  size_t workspace_floats_for(const std::vector<Shape>& inputs, Ops& ops) const override;
  size_t reserve_floats_for(const std::vector<Shape>& inputs, Ops& ops) const override;
  bool reads_sequence_lengths() const override { return true; }
  bool backward_reads_inputs() const override { return true; }
  bool backward_reads_output() const override { return true; }
  bool draws_random_numbers() const override { return options_.layers > 1 && options_.dropout > 0.0f; }
  std::string training_randomness() const override;
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;

  const RecurrentOptions& options() const { return options_; }
  int output_features() const { return options_.hidden * (options_.bidirectional ? 2 : 1); }

 private:
  // Stacked layer l's geometry for a batch read as `in` (its batch and steps).
  RnnGeometry geometry(const Shape& in, int l) const;
  // Where layer l's reserve, output and (dropout) next input live in the node's reserve.
  struct ReserveLayout {
    std::vector<size_t> kernel, output, next_input;  // float offsets; next_input == output without dropout
    size_t total = 0;
  };
  ReserveLayout reserve_layout(const Shape& in, Ops& ops) const;
  template <class W, class P>
  W per_direction(const std::vector<P>& params, int l) const;
  uint64_t dropout_seed(uint64_t seed, int l) const;
  int layer_input(int l) const { return l == 0 ? input_ : output_features(); }

  int input_;
  RecurrentOptions options_;
};

}  // namespace graft
