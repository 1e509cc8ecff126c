// Losses, hand-written CUDA. Same semantics and arguments as graft::cpu's losses (device
// pointers; loss_sum and correct are device doubles the kernel adds to), plus the stream.
// Deterministic: each loss is one launch of one block whose warps take fixed rows and whose
// partial sums are added in a fixed order, so the same inputs give bitwise the same sums.
//   softmax_cross_entropy: one warp per row (max, argmax, log-sum-exp, loss and gradient in
//     one pass over the row held in cache), for the batch sizes of a training step.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace graft::cuda {

void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels, float smoothing,
                           float grad_scale, float* dlogits, double* loss_sum, double* correct, cudaStream_t stream);

void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred, double* loss_sum,
         cudaStream_t stream);

}  // namespace graft::cuda
