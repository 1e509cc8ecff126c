// Embedding and sequence pooling on the CPU: the oracle for the CUDA kernels and the CPU
// backend's implementation. Semantics are Ops' (kernels/ops.h "sequences"; the geometry in
// kernels/cpu/geometry.h); lengths are host memory, null = every sequence has all steps.
#pragma once
#include <cstdint>

#include "kernels/cpu/geometry.h"

namespace graft::cpu {

void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                       float* y);
// Overwrites dtable: the sum of dy's rows per id; padding_idx's row stays zero.
void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                        float* dtable);

void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y);
// Overwrites all of dx (zero where the pooling read nothing).
void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy, float* dx);

}  // namespace graft::cpu
