#include "kernels/cuda/ops_cuda.h"

#include <exception>

#include "kernels/cuda/augment.h"
#include "kernels/cuda/batchnorm.h"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/dense.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/loss.h"
#include "kernels/cuda/misc.h"
#include "kernels/cuda/optimizer.h"
#include "kernels/cuda/pool.h"
#include "base/cuda/capture.h"
#include "base/cuda/cuda_check.h"

namespace graft::cuda {

cudaStream_t compute_stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    GRAFT_CUDA_CHECK(cudaStreamCreate(&s));
    return s;
  }();
  return stream;
}

CudaOps::CudaOps(MemoryPool& pool)
    : pool_(pool),
      stream_(compute_stream()),
      scalars_(pool, sizeof(math::StepScalars), "workspace"),
      flag_(pool, sizeof(int), "workspace") {}

CudaOps::~CudaOps() {
  for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
  for (cudaEvent_t e : fences_)
    if (e) (void)cudaEventDestroy(e);
  for (cudaGraphExec_t g : graphs_)
    if (g) (void)cudaGraphExecDestroy(g);
}

// Thread-local capture: other threads' CUDA calls (the decode workers allocate nothing on
// the device) are not affected, and an unsafe call on this thread fails the capture loudly.
bool CudaOps::begin_capture() {
  capture_memory_ = replaced_memory_count().load(std::memory_order_relaxed);
  GRAFT_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  return true;
}

// Ends the recording. Called from a catch block (the executor abandoning a capture that
// threw), it only ends it and returns -1: the exception being handled is the report, and a
// second one would escape the executor's fallback. Otherwise a capture or instantiation
// that failed throws graft::Error with the CUDA error it got (the executor prints it and
// runs the steps eagerly). Either way the stream leaves capture mode, usable.
int CudaOps::end_capture() {
  const bool abandoning = std::current_exception() != nullptr;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const cudaError_t queried = cudaStreamIsCapturing(stream_, &status);
  if (queried != cudaSuccess || status == cudaStreamCaptureStatusNone) {
    (void)cudaGetLastError();
    if (abandoning) return -1;
    if (queried != cudaSuccess) GRAFT_CUDA_CHECK(queried);
    fail("CUDA graph capture: the compute stream was not recording at the end of the step");
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  (void)cudaGetLastError();  // an invalidated capture's error is not sticky: clear it
  if (ended != cudaSuccess || !graph || abandoning) {
    if (graph) (void)cudaGraphDestroy(graph);
    if (abandoning) return -1;
    if (ended != cudaSuccess)
      fail("CUDA graph capture of the step failed: cudaStreamEndCapture returned ", cudaGetErrorName(ended), " (",
           cudaGetErrorString(ended), "); a call in the step could not be recorded");
    fail("CUDA graph capture of the step failed: cudaStreamEndCapture returned no graph");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (made != cudaSuccess) {
    (void)cudaGetLastError();
    fail("CUDA graph capture of the step failed: cudaGraphInstantiate returned ", cudaGetErrorName(made), " (",
         cudaGetErrorString(made), ")");
  }
  graphs_.push_back(exec);
  graph_memory_.push_back(capture_memory_);
  return static_cast<int>(graphs_.size()) - 1;
}
void CudaOps::replay(int graph) {
  GRAFT_ASSERT(graph >= 0 && graph < static_cast<int>(graphs_.size()) && graphs_[size_t(graph)], "no step graph ",
               graph);
  if (!graph_current(graph))
    fail("step graph ", graph, " was recorded before memory it uses was replaced (a workspace grew since); "
         "replaying it would write into freed memory: record the step again (graph_current() says when)");
  GRAFT_CUDA_CHECK(cudaGraphLaunch(graphs_[size_t(graph)], stream_));
}
bool CudaOps::graph_current(int graph) const {
  return graph >= 0 && graph < static_cast<int>(graphs_.size()) && graphs_[size_t(graph)] &&
         graph_memory_[size_t(graph)] == replaced_memory_count().load(std::memory_order_relaxed);
}
void CudaOps::drop_graph(int graph) {
  if (graph < 0 || graph >= static_cast<int>(graphs_.size()) || !graphs_[size_t(graph)]) return;
  GRAFT_CUDA_CHECK(cudaGraphExecDestroy(graphs_[size_t(graph)]));
  graphs_[size_t(graph)] = nullptr;
}

void CudaOps::fence(int slot) {
  GRAFT_ASSERT(slot == 0 || slot == 1, "fence slot ", slot);
  if (!fences_[slot]) GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&fences_[slot], cudaEventDisableTiming));
  GRAFT_CUDA_CHECK(cudaEventRecord(fences_[slot], stream_));
}
void CudaOps::wait_fence(int slot) {
  GRAFT_ASSERT(slot == 0 || slot == 1, "fence slot ", slot);
  if (fences_[slot]) GRAFT_CUDA_CHECK(cudaEventSynchronize(fences_[slot]));
}

int CudaOps::mark() {
  if (marks_used_ == static_cast<int>(events_.size())) {
    cudaEvent_t e = nullptr;
    GRAFT_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  GRAFT_CUDA_CHECK(cudaEventRecord(events_[size_t(marks_used_)], stream_));
  return marks_used_++;
}

double CudaOps::elapsed_ms(int a, int b) {
  if (a < 0 || b < 0 || a >= marks_used_ || b >= marks_used_) fail("CudaOps::elapsed_ms: no mark ", a, " or ", b);
  GRAFT_CUDA_CHECK(cudaEventSynchronize(events_[size_t(b)]));
  float ms = 0;
  GRAFT_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[size_t(a)], events_[size_t(b)]));
  return ms;
}

size_t CudaOps::conv2d_workspace_floats(const Conv2dGeometry& g) {
  return cuda::conv2d_backward_filter_workspace_floats(g);
}
void CudaOps::conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                             float*) {
  cuda::conv2d_forward(g, x, w, bias, y, stream_);
}
void CudaOps::conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx, float*) {
  cuda::conv2d_backward_data(g, dy, w, dx, stream_);
}
void CudaOps::conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, float* workspace) {
  cuda::conv2d_backward_filter(g, x, dy, dw, dbias, workspace, stream_);
}

void CudaOps::dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) {
  cuda::dense_forward(n, in, out, x, w, bias, y, stream_);
}
void CudaOps::dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) {
  cuda::dense_backward_data(n, in, out, dy, w, dx, stream_);
}
void CudaOps::dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                                     float* dbias) {
  cuda::dense_backward_weights(n, in, out, x, dy, dw, dbias, stream_);
}

void CudaOps::maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  cuda::maxpool2d_forward(g, x, y, stream_);
}
void CudaOps::maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) {
  cuda::maxpool2d_backward(g, x, dy, dx, stream_);
}
void CudaOps::avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  cuda::avgpool2d_forward(g, x, y, stream_);
}
void CudaOps::avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  cuda::avgpool2d_backward(g, dy, dx, stream_);
}
void CudaOps::global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) {
  cuda::global_avgpool_forward(n, h, w, c, x, y, stream_);
}
void CudaOps::global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) {
  cuda::global_avgpool_backward(n, h, w, c, dy, dx, stream_);
}
void CudaOps::adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y) {
  cuda::adaptive_avgpool2d_forward(g, x, y, stream_);
}
void CudaOps::adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx) {
  cuda::adaptive_avgpool2d_backward(g, dy, dx, stream_);
}

void CudaOps::relu_forward(int64_t count, const float* x, float* y) { cuda::relu_forward(count, x, y, stream_); }
void CudaOps::relu_backward(int64_t count, const float* y, const float* dy, float* dx) {
  cuda::relu_backward(count, y, dy, dx, stream_);
}
void CudaOps::dropout_forward(int64_t count, float p, uint64_t seed, uint64_t rng, int64_t first, const float* x,
                              float* y) {
  cuda::dropout_forward(count, p, seed, rng, first, x, y, stream_);
}
void CudaOps::dropout_backward(int64_t count, float p, uint64_t seed, uint64_t rng, int64_t first, const float* dy,
                               float* dx) {
  cuda::dropout_backward(count, p, seed, rng, first, dy, dx, stream_);
}
void CudaOps::dropout_forward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                                 const float* x, float* y) {
  cuda::dropout_forward_replayable(count, p, seed, step, node, first, x, y, stream_);
}
void CudaOps::dropout_backward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                                  const float* dy, float* dx) {
  cuda::dropout_backward_replayable(count, p, seed, step, node, first, dy, dx, stream_);
}
void CudaOps::add(int64_t count, const float* a, const float* b, float* y) { cuda::add(count, a, b, y, stream_); }
void CudaOps::scale(int64_t count, float alpha, float* x) { cuda::scale(count, alpha, x, stream_); }
void CudaOps::copy(int64_t count, const float* x, float* y) {
  if (count > 0 && x != y)
    GRAFT_CUDA_CHECK(cudaMemcpyAsync(y, x, size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
}
void CudaOps::fill(int64_t count, float value, float* x) { cuda::fill(count, value, x, stream_); }
void CudaOps::augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                            const math::WarpNorm& norm, float* out) {
  cuda::augment_batch(n, h, w, images, examples, norm, out, stream_);
}
void CudaOps::round_to_bf16(int64_t count, const float* x, float* y) { cuda::round_to_bf16(count, x, y, stream_); }

void CudaOps::batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x,
                                      const float* gamma, const float* beta, float* y, float* running_mean,
                                      float* running_var, float* num_batches_tracked, double* scratch) {
  cuda::batchnorm_forward_batch(rows, c, eps, momentum, x, gamma, beta, y, running_mean, running_var,
                                num_batches_tracked, scratch, stream_);
}
void CudaOps::batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                                        const float* beta, const float* running_mean, const float* running_var,
                                        float* y, double* scratch) {
  cuda::batchnorm_forward_running(rows, c, eps, x, gamma, beta, running_mean, running_var, y, scratch, stream_);
}
void CudaOps::batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy,
                                       const float* gamma, float* dx, float* dgamma, float* dbeta, double* scratch) {
  cuda::batchnorm_backward_batch(rows, c, eps, x, dy, gamma, dx, dgamma, dbeta, scratch, stream_);
}
void CudaOps::batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy,
                                         const float* gamma, const float* running_mean, const float* running_var,
                                         float* dx, float* dgamma, float* dbeta, double* scratch) {
  cuda::batchnorm_backward_running(rows, c, eps, x, dy, gamma, running_mean, running_var, dx, dgamma, dbeta, scratch,
                                   stream_);
}

void CudaOps::softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels,
                                    float smoothing, float grad_scale, float* dlogits, double* loss_sum,
                                    double* correct) {
  cuda::softmax_cross_entropy(n, classes, logits, labels, smoothing, grad_scale, dlogits, loss_sum, correct, stream_);
}
void CudaOps::mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred,
                  double* loss_sum) {
  cuda::mse(count, pred, target, grad_scale, dpred, loss_sum, stream_);
}
void CudaOps::one_hot(int n, int classes, const int32_t* labels, float* targets) {
  cuda::one_hot(n, classes, labels, targets, stream_);
}
void CudaOps::add_doubles(int count, const double* src, double* dst) { cuda::add_doubles(count, src, dst, stream_); }

// A copy from host memory recorded into a graph would replay from that address long after
// the caller's value (often on its stack) is gone: refused while recording (the recorded
// step uploads before the capture and reads its scalars from device memory: *_step_at).
namespace {
void refuse_host_copy_under_capture(cudaStream_t stream, const char* what) {
  if (stream_capturing(stream))
    fail(what, " copies from host memory, which a CUDA graph of the step cannot record (it would replay from a "
         "stale host address); upload before the capture or keep the values in device memory");
}
}  // namespace

// The scalars go through one device slot: the copy and the launch are in stream order, so
// the next segment's copy never overtakes this segment's kernel.
void CudaOps::sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf,
                       const math::SgdHyper& h, const math::StepScalars& s) {
  refuse_host_copy_under_capture(stream_, "sgd_step with host scalars");
  auto* d = static_cast<math::StepScalars*>(scalars_.get());
  GRAFT_CUDA_CHECK(cudaMemcpyAsync(d, &s, sizeof s, cudaMemcpyHostToDevice, stream_));
  cuda::sgd_step(count, params, grads, momentum_buf, h, d, stream_);
}
void CudaOps::adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                        const math::AdamHyper& h, const math::StepScalars& s) {
  refuse_host_copy_under_capture(stream_, "adam_step with host scalars");
  auto* d = static_cast<math::StepScalars*>(scalars_.get());
  GRAFT_CUDA_CHECK(cudaMemcpyAsync(d, &s, sizeof s, cudaMemcpyHostToDevice, stream_));
  cuda::adam_step(count, params, grads, exp_avg, exp_avg_sq, h, d, stream_);
}

void CudaOps::sgd_step_at(int64_t count, float* params, const float* grads, float* momentum_buf,
                          const math::SgdHyper& h, const math::StepScalars* s) {
  cuda::sgd_step(count, params, grads, momentum_buf, h, s, stream_);
}
void CudaOps::adam_step_at(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                           const math::AdamHyper& h, const math::StepScalars* s) {
  cuda::adam_step(count, params, grads, exp_avg, exp_avg_sq, h, s, stream_);
}

void CudaOps::zero(void* p, size_t bytes) {
  if (bytes) GRAFT_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
}
void CudaOps::upload(void* dst, const void* host_src, size_t bytes) {
  if (bytes) refuse_host_copy_under_capture(stream_, "an upload");
  if (bytes) GRAFT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
}
void CudaOps::download(void* host_dst, const void* src, size_t bytes) {
  if (bytes) GRAFT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  GRAFT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}
void CudaOps::synchronize() { GRAFT_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
void CudaOps::record_nonfinite(const double* loss, int64_t count, const float* x, int64_t tag, int64_t* first_tag) {
  int* d = static_cast<int*>(flag_.get());
  zero(d, sizeof(int));
  cuda::flag_nonfinite(count, x, d, stream_);
  cuda::record_first_tag(loss, d, tag, first_tag, stream_);
}
bool CudaOps::any_nonfinite(int64_t count, const float* x) {
  int* d = static_cast<int*>(flag_.get());
  zero(d, sizeof(int));
  cuda::flag_nonfinite(count, x, d, stream_);
  int h = 0;
  download(&h, d, sizeof h);
  return h != 0;
}

}  // namespace graft::cuda
