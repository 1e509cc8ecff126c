// Recurrent layers on the CPU (LSTM, GRU; one layer, one or both directions, lengths): the
// oracle the CUDA paths are tested against, and the CPU backend's implementation. Semantics,
// layouts and argument meanings are Ops' (kernels/ops.h, RnnGeometry in geometry.h): PyTorch's
// gate order and parameter layouts, batch-first, zero initial state, outputs past a
// sequence's length zero, a reverse direction that starts at step length-1.
//
// Per direction the input of every step is projected by one GEMM; then each step runs one
// recurrent GEMM over the batch (rows whose sequence has ended sit out) and the gate math per
// row. The backward walks the steps in reverse and ends with GEMMs over all steps for dx and
// the weight gradients.
//
// Reserve (what a training forward keeps for the backward), per direction d, example b and
// processing step s (s-th step the direction ran for b) at ((d * batch + b) * steps + s) * E:
//   LSTM (E = 6H): gate activations i, f, g, o (4H), the cell state c (H), the output h (H)
//   GRU  (E = 5H): gate activations r, z, n (3H), W_hn h_prev + b_hn (H), the output h (H)
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/geometry.h"
#include "kernels/ops.h"

namespace graft::cpu {

size_t rnn_reserve_floats(const RnnGeometry& g);
size_t rnn_workspace_floats(const RnnGeometry& g);
// lengths: host memory, null = every sequence has all steps. reserve null: inference.
void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, float* y,
                 float* reserve, float* workspace);
// dx null: not wanted; dw's pointers null: not wanted (both directions alike).
void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, const float* dy,
                  const float* reserve, float* dx, const RnnGradients& dw, float* workspace);

// Fails naming `op` and the value unless the geometry is positive, every direction has its
// weights, and (when given) every length is within 1..steps.
void check_rnn_geometry(const char* op, const RnnGeometry& g, const int32_t* lengths);

}  // namespace graft::cpu
