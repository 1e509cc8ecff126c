// CudaOps: Ops on device memory through the hand-written kernels (kernels/cuda), in order on
// one stream (compute_stream(), shared by every CudaOps of the process so the executor's and
// the optimizer's work stay ordered). Per-step scalars (the optimizer's StepScalars) and the
// non-finite flag live in small device buffers from the pool, made at construction, so a
// step allocates nothing.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "base/memory_pool.h"

namespace graft::cuda {

// The stream every CudaOps issues its work on (created on first use; a blocking stream, so
// legacy-default-stream copies elsewhere stay ordered with it).
cudaStream_t compute_stream();

class CudaOps : public Ops {
 public:
  explicit CudaOps(MemoryPool& pool);
  Device device() const override { return Device::CUDA; }
  const char* name() const override { return "cuda native"; }
  cudaStream_t stream() const { return stream_; }

  size_t conv2d_workspace_floats(const Conv2dGeometry& g) override;
  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                      float* workspace) override;
  void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                            float* workspace) override;
  void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                              float* workspace) override;

  void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) override;
  void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) override;
  void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                              float* dbias) override;

  void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override;
  void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) override;
  void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override;
  void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) override;
  void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) override;
  void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) override;
  void adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y) override;
  void adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx) override;

  void relu_forward(int64_t count, const float* x, float* y) override;
  void relu_backward(int64_t count, const float* y, const float* dy, float* dx) override;
  void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* x,
                       float* y) override;
  void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* dy,
                        float* dx) override;
  void dropout_forward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                          const float* x, float* y) override;
  void dropout_backward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                           const float* dy, float* dx) override;
  void add(int64_t count, const float* a, const float* b, float* y) override;
  void scale(int64_t count, float alpha, float* x) override;
  void copy(int64_t count, const float* x, float* y) override;
  void fill(int64_t count, float value, float* x) override;
  void round_to_bf16(int64_t count, const float* x, float* y) override;
  void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                     const math::WarpNorm& norm, float* out) override;

  void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                               const float* beta, float* y, float* running_mean, float* running_var,
                               float* num_batches_tracked, double* scratch) override;
  void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, float* y,
                                 double* scratch) override;
  void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                                float* dx, float* dgamma, float* dbeta, double* scratch) override;
  void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy,
                                  const float* gamma, const float* running_mean, const float* running_var, float* dx,
                                  float* dgamma, float* dbeta, double* scratch) override;

  void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                         float* y) override;
  void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                          float* dtable) override;
  size_t rnn_reserve_floats(const RnnGeometry& g) override;
  size_t rnn_workspace_floats(const RnnGeometry& g) override;
  void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                   const RnnWeights& w, float* y, float* reserve, float* workspace) override;
  void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                    const RnnWeights& w, const float* y, const float* dy, float* reserve, float* dx,
                    const RnnGradients& dw, float* workspace) override;
  void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y) override;
  void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy,
                              float* dx) override;

  void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels, float smoothing,
                             float grad_scale, float* dlogits, double* loss_sum, double* correct) override;
  void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred,
           double* loss_sum) override;
  void one_hot(int n, int classes, const int32_t* labels, float* targets) override;
  void add_doubles(int count, const double* src, double* dst) override;

  void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
                const math::StepScalars& s) override;
  void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                 const math::AdamHyper& h, const math::StepScalars& s) override;
  void sgd_step_at(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
                   const math::StepScalars* s) override;
  void adam_step_at(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                    const math::AdamHyper& h, const math::StepScalars* s) override;

  void zero(void* p, size_t bytes) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  bool begin_capture() override;
  int end_capture() override;
  void replay(int graph) override;
  bool graph_current(int graph) const override;
  void drop_graph(int graph) override;
  void fence(int slot) override;
  void wait_fence(int slot) override;
  void synchronize() override;
  bool any_nonfinite(int64_t count, const float* x) override;
  void record_nonfinite(const double* loss, int64_t count, const float* x, int64_t tag, int64_t* first_tag) override;

 protected:
  MemoryPool& pool_;
  cudaStream_t stream_;

 private:
  PoolBuffer scalars_;  // one math::StepScalars
  PoolBuffer flag_;     // one int
  std::vector<cudaEvent_t> events_;  // timing marks, kept for reuse after clear_marks()
  cudaEvent_t fences_[2] = {nullptr, nullptr};  // fence(slot), made on first use
  std::vector<cudaGraphExec_t> graphs_;          // end_capture's, replayed by id (null: dropped)
  std::vector<uint64_t> graph_memory_;           // replaced_memory_count() when each was recorded
  uint64_t capture_memory_ = 0;                  // the same at begin_capture
  int marks_used_ = 0;

 public:
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;
  int mark() override;
  double elapsed_ms(int a, int b) override;
  void clear_marks() override { marks_used_ = 0; }
};

}  // namespace graft::cuda
