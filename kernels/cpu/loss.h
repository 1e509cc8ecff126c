// Losses on the CPU. Sums go into caller-provided accumulators so a step never returns a
// value to the host; the trainer reads them when it reports.
#pragma once
#include <cstdint>

namespace graft::cpu {

// Fused, numerically stable softmax cross-entropy over rows of `classes` logits.
// Target of row i: (1 - smoothing) * onehot(labels[i]) + smoothing / classes (PyTorch's
// label_smoothing). Per row: loss_i = -sum_j t_ij * log_softmax(z_i)_j.
// dlogits (nullable) = (softmax(z_i) - t_i) * grad_scale (1/n for a batch mean).
// loss_sum (nullable) += sum_i loss_i; correct (nullable) += #rows whose argmax == label
// (first maximum wins). Labels outside [0, classes) are a caller bug (checked earlier).
void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels,
                           float smoothing, float grad_scale, float* dlogits, double* loss_sum,
                           double* correct);

// Class-weighted softmax cross-entropy, PyTorch's CrossEntropyLoss(weight=w,
// label_smoothing=s): per row r_i = (1-s) w[y_i] (-log p_i,y_i) + (s/C) sum_c w_c (-log p_i,c);
// the batch loss is sum_i r_i / sum_i w[y_i]. dlogits (nullable) = dr_i/dz * grad_scale
// (grad_scale = 1 / sum_i w[y_i] for the mean); loss_sum += sum_i r_i, weight_sum += sum_i
// w[y_i] (both nullable), correct as above.
void softmax_cross_entropy_weighted(int n, int classes, const float* logits, const int32_t* labels,
                                    const float* class_weights, float smoothing, float grad_scale, float* dlogits,
                                    double* loss_sum, double* weight_sum, double* correct);

// Mean squared error over `count` elements: loss = sum (p - t)^2 (the caller divides);
// dpred (nullable) = 2 (p - t) * grad_scale (1/count for PyTorch's mean reduction).
void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred,
         double* loss_sum);

}  // namespace graft::cpu
