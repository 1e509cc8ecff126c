// ForwardingOps: an Ops that hands every call to another one. A base for Ops that change a
// few calls and keep the rest (Bf16EmulationOps; tests that slow or count calls).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"

namespace graft {

class ForwardingOps : public Ops {
 public:
  explicit ForwardingOps(Ops& base) : base_(base) {}
  Ops& base() { return base_; }

  Device device() const override { return base_.device(); }
  const char* name() const override { return base_.name(); }
  bool computes_bf16() const override { return base_.computes_bf16(); }

  size_t conv2d_workspace_floats(const Conv2dGeometry& g) override { return base_.conv2d_workspace_floats(g); }
  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                      float* workspace) override {
    base_.conv2d_forward(g, x, w, bias, y, workspace);
  }
  void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                            float* workspace) override {
    base_.conv2d_backward_data(g, dy, w, dx, workspace);
  }
  void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                              float* workspace) override {
    base_.conv2d_backward_filter(g, x, dy, dw, dbias, workspace);
  }
  void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) override {
    base_.dense_forward(n, in, out, x, w, bias, y);
  }
  void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) override {
    base_.dense_backward_data(n, in, out, dy, w, dx);
  }
  void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                              float* dbias) override {
    base_.dense_backward_weights(n, in, out, x, dy, dw, dbias);
  }
  void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override { base_.maxpool2d_forward(g, x, y); }
  void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) override {
    base_.maxpool2d_backward(g, x, dy, dx);
  }
  void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override { base_.avgpool2d_forward(g, x, y); }
  void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) override {
    base_.avgpool2d_backward(g, dy, dx);
  }
  void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) override {
    base_.global_avgpool_forward(n, h, w, c, x, y);
  }
  void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) override {
    base_.global_avgpool_backward(n, h, w, c, dy, dx);
  }
  void adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y) override {
    base_.adaptive_avgpool2d_forward(g, x, y);
  }
  void adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx) override {
    base_.adaptive_avgpool2d_backward(g, dy, dx);
  }
  void relu_forward(int64_t count, const float* x, float* y) override { base_.relu_forward(count, x, y); }
  void relu_backward(int64_t count, const float* y, const float* dy, float* dx) override {
    base_.relu_backward(count, y, dy, dx);
  }
  void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* x,
                       float* y) override {
    base_.dropout_forward(count, p, seed, stream, first, x, y);
  }
  void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* dy,
                        float* dx) override {
    base_.dropout_backward(count, p, seed, stream, first, dy, dx);
  }
  void dropout_forward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                          const float* x, float* y) override {
    base_.dropout_forward_at(count, p, seed, step, node, first, x, y);
  }
  void dropout_backward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                           const float* dy, float* dx) override {
    base_.dropout_backward_at(count, p, seed, step, node, first, dy, dx);
  }
  void add(int64_t count, const float* a, const float* b, float* y) override { base_.add(count, a, b, y); }
  void scale(int64_t count, float alpha, float* x) override { base_.scale(count, alpha, x); }
  void copy(int64_t count, const float* x, float* y) override { base_.copy(count, x, y); }
  void fill(int64_t count, float value, float* x) override { base_.fill(count, value, x); }
  void round_to_bf16(int64_t count, const float* x, float* y) override { base_.round_to_bf16(count, x, y); }
  void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                     const math::WarpNorm& norm, float* out) override {
    base_.augment_batch(n, h, w, images, examples, norm, out);
  }
  void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                               const float* beta, float* y, float* running_mean, float* running_var,
                               float* num_batches_tracked, double* scratch) override {
    base_.batchnorm_forward_batch(rows, c, eps, momentum, x, gamma, beta, y, running_mean, running_var,
                                  num_batches_tracked, scratch);
  }
  void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, float* y,
                                 double* scratch) override {
    base_.batchnorm_forward_running(rows, c, eps, x, gamma, beta, running_mean, running_var, y, scratch);
  }
  void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                                float* dx, float* dgamma, float* dbeta, double* scratch) override {
    base_.batchnorm_backward_batch(rows, c, eps, x, dy, gamma, dx, dgamma, dbeta, scratch);
  }
  void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy,
                                  const float* gamma, const float* running_mean, const float* running_var, float* dx,
                                  float* dgamma, float* dbeta, double* scratch) override {
    base_.batchnorm_backward_running(rows, c, eps, x, dy, gamma, running_mean, running_var, dx, dgamma, dbeta,
                                     scratch);
  }
  void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels, float smoothing,
                             float grad_scale, float* dlogits, double* loss_sum, double* correct) override {
    base_.softmax_cross_entropy(n, classes, logits, labels, smoothing, grad_scale, dlogits, loss_sum, correct);
  }
  void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred,
           double* loss_sum) override {
    base_.mse(count, pred, target, grad_scale, dpred, loss_sum);
  }
  void one_hot(int n, int classes, const int32_t* labels, float* targets) override {
    base_.one_hot(n, classes, labels, targets);
  }
  void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                         float* y) override {
    base_.embedding_forward(count, vocab, dim, padding_idx, ids, table, y);
  }
  void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                          float* dtable) override {
    base_.embedding_backward(count, vocab, dim, padding_idx, ids, dy, dtable);
  }
  size_t rnn_reserve_floats(const RnnGeometry& g) override { return base_.rnn_reserve_floats(g); }
  size_t rnn_workspace_floats(const RnnGeometry& g) override { return base_.rnn_workspace_floats(g); }
  void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                   const RnnWeights& w, float* y, float* reserve, float* workspace) override {
    base_.rnn_forward(g, x, host_lengths, lengths, w, y, reserve, workspace);
  }
  void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                    const RnnWeights& w, const float* y, const float* dy, float* reserve, float* dx,
                    const RnnGradients& dw, float* workspace) override {
    base_.rnn_backward(g, x, host_lengths, lengths, w, y, dy, reserve, dx, dw, workspace);
  }
  void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y) override {
    base_.sequence_pool_forward(g, lengths, x, y);
  }
  void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy,
                              float* dx) override {
    base_.sequence_pool_backward(g, lengths, dy, dx);
  }
  void add_doubles(int count, const double* src, double* dst) override { base_.add_doubles(count, src, dst); }
  void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
                const math::StepScalars& s) override {
    base_.sgd_step(count, params, grads, momentum_buf, h, s);
  }
  void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                 const math::AdamHyper& h, const math::StepScalars& s) override {
    base_.adam_step(count, params, grads, exp_avg, exp_avg_sq, h, s);
  }
  void sgd_step_at(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
                   const math::StepScalars* s) override {
    base_.sgd_step_at(count, params, grads, momentum_buf, h, s);
  }
  void adam_step_at(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                    const math::AdamHyper& h, const math::StepScalars* s) override {
    base_.adam_step_at(count, params, grads, exp_avg, exp_avg_sq, h, s);
  }
  void zero(void* p, size_t bytes) override { base_.zero(p, bytes); }
  void upload(void* dst, const void* host_src, size_t bytes) override { base_.upload(dst, host_src, bytes); }
  void download(void* host_dst, const void* src, size_t bytes) override { base_.download(host_dst, src, bytes); }
  void synchronize() override { base_.synchronize(); }
  void fence(int slot) override { base_.fence(slot); }
  void wait_fence(int slot) override { base_.wait_fence(slot); }
  bool any_nonfinite(int64_t count, const float* x) override { return base_.any_nonfinite(count, x); }
  void record_nonfinite(const double* loss, int64_t count, const float* x, int64_t tag, int64_t* first_tag) override {
    base_.record_nonfinite(loss, count, x, tag, first_tag);
  }
  bool begin_capture() override { return base_.begin_capture(); }
  int end_capture() override { return base_.end_capture(); }
  void replay(int graph) override { base_.replay(graph); }
  bool graph_current(int graph) const override { return base_.graph_current(graph); }
  void drop_graph(int graph) override { base_.drop_graph(graph); }
  int mark() override { return base_.mark(); }
  double elapsed_ms(int a, int b) override { return base_.elapsed_ms(a, b); }
  void clear_marks() override { base_.clear_marks(); }

 protected:
  Ops& base_;
};

}  // namespace graft
