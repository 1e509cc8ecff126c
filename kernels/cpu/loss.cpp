// Losses on the CPU: fused softmax cross-entropy (stable: row max subtracted, log-sum-exp in
// double) and MSE. Sums accumulate into caller-provided doubles. A label outside
// [0, classes) is never used as an index: that row's loss (and weight) and its gradient row
// are NaN, and it is not correct, the same as the CUDA kernel; the NaN guard and the epoch
// line then show it (the executor's host-side check names the label first).
#include "kernels/cpu/loss.h"

#include <cmath>
#include <cstdint>
#include <limits>

namespace graft::cpu {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool label_in_range(int label, int classes) { return label >= 0 && label < classes; }

void nan_row(float* d, int classes) {
  for (int j = 0; j < classes; ++j) d[j] = std::numeric_limits<float>::quiet_NaN();
}

}  // namespace

void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels, float smoothing,
                           float grad_scale, float* dlogits, double* loss_sum, double* correct) {
  const double s = smoothing;
  const double off = s / classes;  // the target's value off the label
  double total_loss = 0.0, total_correct = 0.0;
  for (int i = 0; i < n; ++i) {
    const float* z = logits + int64_t{i} * classes;
    const int label = labels[i];
    if (!label_in_range(label, classes)) {
      total_loss += kNaN;
      if (dlogits) nan_row(dlogits + int64_t{i} * classes, classes);
      continue;
    }
    int argmax = 0;
    for (int j = 1; j < classes; ++j)
      if (z[j] > z[argmax]) argmax = j;  // first maximum wins
    const double zmax = z[argmax];
    double sum_exp = 0.0, sum_z = 0.0;
    for (int j = 0; j < classes; ++j) {
      sum_exp += std::exp(double(z[j]) - zmax);
      sum_z += double(z[j]) - zmax;
    }
    const double log_sum = std::log(sum_exp);  // lse - zmax
    // loss = -sum_j t_j (z_j - lse), t = (1 - s) onehot + s / C.
    const double logp_label = double(z[label]) - zmax - log_sum;
    const double sum_logp = sum_z - classes * log_sum;
    total_loss += -(1.0 - s) * logp_label - off * sum_logp;
    if (argmax == label) total_correct += 1.0;
    if (dlogits) {
      float* d = dlogits + int64_t{i} * classes;
      for (int j = 0; j < classes; ++j) {
        const double p = std::exp(double(z[j]) - zmax - log_sum);
        const double t = (j == label ? 1.0 - s : 0.0) + off;
        d[j] = static_cast<float>((p - t) * grad_scale);
      }
    }
  }
  if (loss_sum) *loss_sum += total_loss;
  if (correct) *correct += total_correct;
}

void softmax_cross_entropy_weighted(int n, int classes, const float* logits, const int32_t* labels,
                                    const float* class_weights, float smoothing, float grad_scale, float* dlogits,
                                    double* loss_sum, double* weight_sum, double* correct) {
  const double s = smoothing;
  double all_weights = 0.0;
  for (int j = 0; j < classes; ++j) all_weights += class_weights[j];
  double total_loss = 0.0, total_weight = 0.0, total_correct = 0.0;
  for (int i = 0; i < n; ++i) {
    const float* z = logits + int64_t{i} * classes;
    const int label = labels[i];
    if (!label_in_range(label, classes)) {
      total_loss += kNaN;
      total_weight += kNaN;
      if (dlogits) nan_row(dlogits + int64_t{i} * classes, classes);
      continue;
    }
    const double w_label = class_weights[label];
    int argmax = 0;
    for (int j = 1; j < classes; ++j)
      if (z[j] > z[argmax]) argmax = j;
    const double zmax = z[argmax];
    double sum_exp = 0.0, weighted_logp = 0.0;
    for (int j = 0; j < classes; ++j) sum_exp += std::exp(double(z[j]) - zmax);
    const double log_sum = std::log(sum_exp);
    for (int j = 0; j < classes; ++j) weighted_logp += class_weights[j] * (double(z[j]) - zmax - log_sum);
    const double logp_label = double(z[label]) - zmax - log_sum;
    total_loss += -(1.0 - s) * w_label * logp_label - (s / classes) * weighted_logp;
    total_weight += w_label;
    if (argmax == label) total_correct += 1.0;
    if (dlogits) {
      // d r_i / d z_j = p_j ((1-s) w_y + (s/C) W) - (1-s) w_y [j == y] - (s/C) w_j
      const double mass = (1.0 - s) * w_label + (s / classes) * all_weights;
      float* d = dlogits + int64_t{i} * classes;
      for (int j = 0; j < classes; ++j) {
        const double p = std::exp(double(z[j]) - zmax - log_sum);
        const double g = p * mass - (j == label ? (1.0 - s) * w_label : 0.0) - (s / classes) * class_weights[j];
        d[j] = static_cast<float>(g * grad_scale);
      }
    }
  }
  if (loss_sum) *loss_sum += total_loss;
  if (weight_sum) *weight_sum += total_weight;
  if (correct) *correct += total_correct;
}

void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred, double* loss_sum) {
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    const double diff = double(pred[i]) - double(target[i]);
    total += diff * diff;
    if (dpred) dpred[i] = static_cast<float>(2.0 * diff * grad_scale);
  }
  if (loss_sum) *loss_sum += total;
}

}  // namespace graft::cpu
