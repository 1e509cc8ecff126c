// Embedding and sequence pooling, hand-written CUDA (device pointers, one stream), with the
// semantics of Ops' (kernels/ops.h): ids as whole-number floats, padding_idx rows zero and
// without gradient, "last" and "mean" pooling over each sequence's length. The embedding
// backward uses no atomics and no workspace: each table entry is the sum of its tokens' dy
// rows from 0 in token order (the CPU reference's order), so it is bitwise the same on every
// run and bitwise the CPU's.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/common/hd.h"
#include "kernels/cpu/geometry.h"

namespace graft::cuda {

// A sequence's length from the optional device array, clamped into [0, steps] so that a bad
// value can never index outside the batch (callers check lengths on the host where they can).
GRAFT_HD int sequence_length(const int32_t* lengths, int b, int steps) {
  if (!lengths) return steps;
  const int len = lengths[b];
  return len < 0 ? 0 : (len > steps ? steps : len);
}

void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                       float* y, cudaStream_t stream);
void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                        float* dtable, cudaStream_t stream);
void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y,
                           cudaStream_t stream);
void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy, float* dx,
                            cudaStream_t stream);

}  // namespace graft::cuda

namespace graft::cuda::host_emulation {
void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                       float* y);
void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                        float* dtable);
void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y);
void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy, float* dx);
}  // namespace graft::cuda::host_emulation
