// Recurrent layers (LSTM, GRU; one layer, one or both directions), hand-written CUDA: the
// per-step GEMM formulation (docs/kernels-rnn.md). One GEMM projects the input of every step
// and both directions; then per step one recurrent GEMM per direction and one fused
// element-wise kernel for both (gates, cell update, masking by length, y and the reserve).
// The backward runs the same way in reverse and ends with three GEMMs over all steps: dx and
// the weight gradients. Semantics, layouts and argument meanings are Ops' (kernels/ops.h,
// RnnGeometry in kernels/cpu/geometry.h); `lengths` is device memory (null: full length),
// read only by the kernels, so a captured step graph replays with any lengths.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace graft::cuda {

size_t rnn_reserve_floats(const RnnGeometry& g);
size_t rnn_workspace_floats(const RnnGeometry& g);
void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, float* y,
                 float* reserve, float* workspace, cudaStream_t stream);
void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, const float* dy,
                  const float* reserve, float* dx, const RnnGradients& dw, float* workspace, cudaStream_t stream);

// Checks every backend's recurrent calls make: a sane geometry, weights for every direction,
// and (when given) host lengths within 1..steps. Names the offending value.
void check_rnn_call(const char* op, const RnnGeometry& g, const RnnWeights& w, const int32_t* host_lengths);

}  // namespace graft::cuda

// The same computation on the host (host pointers; the GEMMs through the tiled kernel's host
// emulation): what checks the step loop, the masking and the index math without a device.
namespace graft::cuda::host_emulation {
void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, float* y,
                 float* reserve, float* workspace);
void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, const float* dy,
                  const float* reserve, float* dx, const RnnGradients& dw, float* workspace);
}  // namespace graft::cuda::host_emulation
