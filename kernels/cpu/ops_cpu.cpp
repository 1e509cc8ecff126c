// CpuOps: forwards every op to graft::cpu.
#include "kernels/cpu/ops_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/adaptive_pool.h"
#include "kernels/cpu/augment.h"
#include "kernels/cpu/batchnorm.h"
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/dense.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/optimizer.h"
#include "kernels/cpu/pool.h"
#include "kernels/common/elementwise.h"
#include "base/error.h"

namespace graft {

const char* kernel_choice_name(KernelChoice k) {
  return k == KernelChoice::Native ? "native" : k == KernelChoice::Library ? "library" : "auto";
}

int Ops::mark() {
  synchronize();
  host_marks_.push_back(std::chrono::steady_clock::now());
  return static_cast<int>(host_marks_.size()) - 1;
}

double Ops::elapsed_ms(int a, int b) {
  const auto count = static_cast<int>(host_marks_.size());
  if (a < 0 || b < 0 || a >= count || b >= count) fail("Ops::elapsed_ms: no mark ", a, " or ", b);
  return std::chrono::duration<double, std::milli>(host_marks_[size_t(b)] - host_marks_[size_t(a)]).count();
}

void Ops::clear_marks() { host_marks_.clear(); }

Ops& cpu_ops(bool reference) {
  static cpu::CpuOps fast(false), oracle(true);
  return reference ? static_cast<Ops&>(oracle) : static_cast<Ops&>(fast);
}

}  // namespace graft

namespace graft::cpu {

size_t CpuOps::conv2d_workspace_floats(const Conv2dGeometry& g) {
  return cpu::conv2d_workspace_floats(g);  // planned alike for both, as before
}
void CpuOps::conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                            float* workspace) {
  if (reference_)
    conv2d_forward_reference(g, x, w, bias, y);
  else
    conv2d_forward_fast(g, x, w, bias, y, workspace);
}
void CpuOps::conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                  float* workspace) {
  if (reference_)
    conv2d_backward_data_reference(g, dy, w, dx);
  else
    conv2d_backward_data_fast(g, dy, w, dx, workspace);
}
void CpuOps::conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                    float* dbias, float* workspace) {
  if (reference_)
    conv2d_backward_filter_reference(g, x, dy, dw, dbias);
  else
    conv2d_backward_filter_fast(g, x, dy, dw, dbias, workspace);
}

void CpuOps::dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) {
  if (reference_)
    dense_forward_reference(n, in, out, x, w, bias, y);
  else
    dense_forward_fast(n, in, out, x, w, bias, y);
}
void CpuOps::dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) {
  if (reference_)
    dense_backward_data_reference(n, in, out, dy, w, dx);
  else
    dense_backward_data_fast(n, in, out, dy, w, dx);
}
void CpuOps::dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                                    float* dbias) {
  if (reference_)
    dense_backward_weights_reference(n, in, out, x, dy, dw, dbias);
  else
    dense_backward_weights_fast(n, in, out, x, dy, dw, dbias);
}

void CpuOps::maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) { cpu::maxpool2d_forward(g, x, y); }
void CpuOps::maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) {
  cpu::maxpool2d_backward(g, x, dy, dx);
}
void CpuOps::avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) { cpu::avgpool2d_forward(g, x, y); }
void CpuOps::avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  cpu::avgpool2d_backward(g, dy, dx);
}
void CpuOps::global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) {
  cpu::global_avgpool_forward(n, h, w, c, x, y);
}
void CpuOps::global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) {
  cpu::global_avgpool_backward(n, h, w, c, dy, dx);
}
void CpuOps::adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y) {
  cpu::adaptive_avgpool2d_forward(g, x, y);
}
void CpuOps::adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx) {
  cpu::adaptive_avgpool2d_backward(g, dy, dx);
}

void CpuOps::relu_forward(int64_t count, const float* x, float* y) { cpu::relu_forward(count, x, y); }
void CpuOps::relu_backward(int64_t count, const float* y, const float* dy, float* dx) {
  cpu::relu_backward(count, y, dy, dx);
}
void CpuOps::dropout_forward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* x,
                             float* y) {
  cpu::dropout_forward(count, p, seed, stream, first, x, y);
}
void CpuOps::dropout_backward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* dy,
                              float* dx) {
  cpu::dropout_backward(count, p, seed, stream, first, dy, dx);
}
void CpuOps::dropout_forward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                                const float* x, float* y) {
  cpu::dropout_forward(count, p, seed, math::layer_stream(*step, node), first, x, y);
}
void CpuOps::dropout_backward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                                 const float* dy, float* dx) {
  cpu::dropout_backward(count, p, seed, math::layer_stream(*step, node), first, dy, dx);
}
void CpuOps::add(int64_t count, const float* a, const float* b, float* y) { cpu::add(count, a, b, y); }
void CpuOps::scale(int64_t count, float alpha, float* x) { cpu::scale(count, alpha, x); }
void CpuOps::copy(int64_t count, const float* x, float* y) { std::copy(x, x + count, y); }
void CpuOps::fill(int64_t count, float value, float* x) { std::fill(x, x + count, value); }
void CpuOps::augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                           const math::WarpNorm& norm, float* out) {
  cpu::augment_batch(n, h, w, images, examples, norm, out);
}
void CpuOps::round_to_bf16(int64_t count, const float* x, float* y) { cpu::round_to_bf16(count, x, y); }

void CpuOps::batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x,
                                     const float* gamma, const float* beta, float* y, float* running_mean,
                                     float* running_var, float* num_batches_tracked, double* scratch) {
  cpu::batchnorm_forward_batch(rows, c, eps, momentum, x, gamma, beta, y, running_mean, running_var, scratch);
  if (num_batches_tracked) num_batches_tracked[0] += 1.0f;
}
void CpuOps::batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                                       const float* beta, const float* running_mean, const float* running_var,
                                       float* y, double*) {
  cpu::batchnorm_forward_running(rows, c, eps, x, gamma, beta, running_mean, running_var, y);
}
void CpuOps::batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy,
                                      const float* gamma, float* dx, float* dgamma, float* dbeta, double* scratch) {
  cpu::batchnorm_backward_batch(rows, c, eps, x, dy, gamma, dx, dgamma, dbeta, scratch);
}
void CpuOps::batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy,
                                        const float* gamma, const float* running_mean, const float* running_var,
                                        float* dx, float* dgamma, float* dbeta, double* scratch) {
  cpu::batchnorm_backward_running(rows, c, eps, x, dy, gamma, running_mean, running_var, dx, dgamma, dbeta, scratch);
}

void CpuOps::softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels, float smoothing,
                                   float grad_scale, float* dlogits, double* loss_sum, double* correct) {
  cpu::softmax_cross_entropy(n, classes, logits, labels, smoothing, grad_scale, dlogits, loss_sum, correct);
}
void CpuOps::mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred,
                 double* loss_sum) {
  cpu::mse(count, pred, target, grad_scale, dpred, loss_sum);
}
void CpuOps::one_hot(int n, int classes, const int32_t* labels, float* targets) {
  std::fill(targets, targets + int64_t{n} * classes, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t l = labels[i];  // out of range: a NaN row, as the CUDA kernel (never an index)
    if (l < 0 || l >= classes)
      std::fill(targets + i * classes, targets + (i + 1) * classes, std::numeric_limits<float>::quiet_NaN());
    else
      targets[i * classes + l] = 1.0f;
  }
}
void CpuOps::add_doubles(int count, const double* src, double* dst) {
  for (int i = 0; i < count; ++i) dst[i] += src[i];
}

void CpuOps::sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf,
                      const math::SgdHyper& h, const math::StepScalars& s) {
  cpu::sgd_step(count, params, grads, momentum_buf, h, s);
}
void CpuOps::adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                       const math::AdamHyper& h, const math::StepScalars& s) {
  cpu::adam_step(count, params, grads, exp_avg, exp_avg_sq, h, s);
}

void CpuOps::zero(void* p, size_t bytes) {
  if (bytes) std::memset(p, 0, bytes);
}
void CpuOps::upload(void* dst, const void* host_src, size_t bytes) {
  if (bytes && dst != host_src) std::memmove(dst, host_src, bytes);
}
void CpuOps::download(void* host_dst, const void* src, size_t bytes) {
  if (bytes && host_dst != src) std::memmove(host_dst, src, bytes);
}
bool CpuOps::any_nonfinite(int64_t count, const float* x) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(x[i])) return true;
  return false;
}
void CpuOps::record_nonfinite(const double* loss, int64_t count, const float* x, int64_t tag, int64_t* first_tag) {
  if (*first_tag < 0 && (!std::isfinite(*loss) || any_nonfinite(count, x))) *first_tag = tag;
}

}  // namespace graft::cpu
