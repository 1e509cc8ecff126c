// Shapes of the spatial ops, shared by every backend. Activations are NHWC.
#pragma once
#include <cstdint>

namespace graft {

struct Conv2dGeometry {
  int n = 1, h = 1, w = 1, c_in = 1;  // input NHWC
  int c_out = 1, kh = 1, kw = 1;
  int stride = 1, pad = 0;
  int out_h() const { return (h + 2 * pad - kh) / stride + 1; }
  int out_w() const { return (w + 2 * pad - kw) / stride + 1; }
  // Weights are OHWI: [c_out][kh][kw][c_in], so one output pixel is a dot product of a
  // contiguous weight row with an im2col patch ordered (kh, kw, c_in).
  int64_t weight_numel() const { return int64_t{c_out} * kh * kw * c_in; }
  int64_t input_numel() const { return int64_t{n} * h * w * c_in; }
  int64_t output_numel() const { return int64_t{n} * out_h() * out_w() * c_out; }
};

struct Pool2dGeometry {
  int n = 1, h = 1, w = 1, c = 1;
  int kh = 2, kw = 2, stride = 2, pad = 0;
  int out_h() const { return (h + 2 * pad - kh) / stride + 1; }
  int out_w() const { return (w + 2 * pad - kw) / stride + 1; }
  int64_t input_numel() const { return int64_t{n} * h * w * c; }
  int64_t output_numel() const { return int64_t{n} * out_h() * out_w() * c; }
};

// --- sequences: activations [batch, steps, features], batch-first as PyTorch's batch_first ---

enum class RnnCell { LSTM, GRU };

// One recurrent layer (one or both directions) over a batch of sequences. The initial state
// is zero. Gate order and layouts are PyTorch's: LSTM i, f, g, o; GRU r, z, n with the
// reset gate applied after the recurrent product (n = tanh(W_in x + b_in + r * (W_hn h + b_hn))),
// which is also cuDNN's CUDNN_GRU.
struct RnnGeometry {
  RnnCell cell = RnnCell::LSTM;
  int batch = 1, steps = 1, input = 1, hidden = 1;
  bool bidirectional = false;
  int gates() const { return cell == RnnCell::LSTM ? 4 : 3; }
  int directions() const { return bidirectional ? 2 : 1; }
  int64_t input_numel() const { return int64_t{batch} * steps * input; }
  // y [batch, steps, directions * hidden]: the forward direction's hidden state in the first
  // half of each row, the reverse direction's in the second (PyTorch's output).
  int64_t output_numel() const { return int64_t{batch} * steps * directions() * hidden; }
  // One direction's parameters: weight_ih [gates*hidden, input], weight_hh [gates*hidden,
  // hidden], bias_ih [gates*hidden], bias_hh [gates*hidden].
  int64_t direction_params() const {
    const int64_t gh = int64_t{gates()} * hidden;
    return gh * input + gh * hidden + 2 * gh;
  }
};

// Sequence pooling over time with per-sequence lengths: x [batch, steps, features] -> y
// [batch, features] ("Last", "Mean") or [batch, steps * features] ("Flatten": every step side
// by side, the steps past a sequence's length zero, PyTorch's padded output reshaped). "Last"
// takes step len-1 for features [0, reverse_from) and step 0 for features [reverse_from, features) (the reverse direction of a bidirectional layer ends
// at the first step); reverse_from = features when there is no reverse half.
enum class SequencePoolMode { Last, Mean, Flatten };
struct SequencePoolGeometry {
  SequencePoolMode mode = SequencePoolMode::Last;
  int batch = 1, steps = 1, features = 1;
  int reverse_from = 1;
};

}  // namespace graft
