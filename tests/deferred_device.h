// A stand-in device for CPU tests of the runtime's device paths (tests/deferred_device_test.cpp):
// a backend that says CUDA, whose kernels are the CPU's but queued on one "stream" and run
// only when the host waits (a download, synchronize, a fence wait), whose batch staging is
// "pinned" host memory uploaded when the queue runs (pageable sources copied at the call, as
// cudaMemcpyAsync does), and whose pool is poisoned memory that says CUDA. On the CPU backend
// every call finishes before it returns and input()/labels() are the buffers the kernels read,
// so a runtime that reads a device result without waiting, or a staging buffer after handing
// it over, is right there and wrong on a GPU; here it is wrong too.
#pragma once
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/backend_registry.h"
#include "runtime/forwarding_ops.h"
#include "runtime/memory_pool.h"

namespace graft::testing {

// The one queue of every DeferredOps (as the process's one compute stream) and the pinned blocks.
inline std::vector<std::function<void()>>& deferred_queue() {
  static std::vector<std::function<void()>> q;
  return q;
}
inline std::vector<std::pair<const char*, size_t>>& deferred_pinned() {
  static std::vector<std::pair<const char*, size_t>> p;
  return p;
}
inline void run_deferred() {
  auto q = std::move(deferred_queue());
  deferred_queue().clear();
  for (auto& f : q) f();
}
inline bool deferred_is_pinned(const void* p) {
  for (const auto& [b, n] : deferred_pinned())
    if (static_cast<const char*>(p) >= b && static_cast<const char*>(p) < b + n) return true;
  return false;
}

class DeferredOps final : public ForwardingOps {
 public:
  explicit DeferredOps(Ops& base) : ForwardingOps(base) {}
  Device device() const override { return Device::CUDA; }
  // A device backend reads the host's copy of the lengths when called (to plan), the kernels
  // the device copy later: the queued CPU kernel gets the lengths as they were at the call.
  static std::vector<int32_t> host_copy(const RnnGeometry& g, const int32_t* host_lengths) {
    return host_lengths ? std::vector<int32_t>(host_lengths, host_lengths + g.batch) : std::vector<int32_t>();
  }
  void enqueue(std::function<void()> f) { deferred_queue().push_back(std::move(f)); }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (deferred_is_pinned(src)) { enqueue([=] { std::memcpy(dst, src, bytes); }); return; }
    std::vector<char> copy(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);  // pageable: staged now
    enqueue([=, c = std::move(copy)] { std::memcpy(dst, c.data(), bytes); });
  }
  void download(void* dst, const void* src, size_t bytes) override { run_deferred(); std::memcpy(dst, src, bytes); }
  void synchronize() override { run_deferred(); }
  void fence(int) override {}
  void wait_fence(int) override { run_deferred(); }
  bool any_nonfinite(int64_t count, const float* x) override { run_deferred(); return base_.any_nonfinite(count, x); }
  int mark() override { run_deferred(); return base_.mark(); }
  double elapsed_ms(int a, int b) override { run_deferred(); return base_.elapsed_ms(a, b); }
  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                      float* workspace) override {
    enqueue([=, this] { base_.conv2d_forward(g, x, w, bias, y, workspace); });
  }
  void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                            float* workspace) override {
    enqueue([=, this] { base_.conv2d_backward_data(g, dy, w, dx, workspace); });
  }
  void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                              float* workspace) override {
    enqueue([=, this] { base_.conv2d_backward_filter(g, x, dy, dw, dbias, workspace); });
  }
  void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) override {
    enqueue([=, this] { base_.dense_forward(n, in, out, x, w, bias, y); });
  }
  void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) override {
    enqueue([=, this] { base_.dense_backward_data(n, in, out, dy, w, dx); });
  }
  void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                              float* dbias) override {
    enqueue([=, this] { base_.dense_backward_weights(n, in, out, x, dy, dw, dbias); });
  }
  void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override {
    enqueue([=, this] { base_.maxpool2d_forward(g, x, y); });
  }
  void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) override {
    enqueue([=, this] { base_.maxpool2d_backward(g, x, dy, dx); });
  }
  void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override {
    enqueue([=, this] { base_.avgpool2d_forward(g, x, y); });
  }
  void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) override {
    enqueue([=, this] { base_.avgpool2d_backward(g, dy, dx); });
  }
  void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) override {
    enqueue([=, this] { base_.global_avgpool_forward(n, h, w, c, x, y); });
  }
  void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) override {
    enqueue([=, this] { base_.global_avgpool_backward(n, h, w, c, dy, dx); });
  }
  void adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y) override {
    enqueue([=, this] { base_.adaptive_avgpool2d_forward(g, x, y); });
  }
  void adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx) override {
    enqueue([=, this] { base_.adaptive_avgpool2d_backward(g, dy, dx); });
  }
  void relu_forward(int64_t count, const float* x, float* y) override {
    enqueue([=, this] { base_.relu_forward(count, x, y); });
  }
  void relu_backward(int64_t count, const float* y, const float* dy, float* dx) override {
    enqueue([=, this] { base_.relu_backward(count, y, dy, dx); });
  }
  void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* x,
                       float* y) override {
    enqueue([=, this] { base_.dropout_forward(count, p, seed, stream, first, x, y); });
  }
  void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* dy,
                        float* dx) override {
    enqueue([=, this] { base_.dropout_backward(count, p, seed, stream, first, dy, dx); });
  }
  void dropout_forward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                          const float* x, float* y) override {
    enqueue([=, this] { base_.dropout_forward_at(count, p, seed, step, node, first, x, y); });
  }
  void dropout_backward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node, int64_t first,
                           const float* dy, float* dx) override {
    enqueue([=, this] { base_.dropout_backward_at(count, p, seed, step, node, first, dy, dx); });
  }
  void add(int64_t count, const float* a, const float* b, float* y) override {
    enqueue([=, this] { base_.add(count, a, b, y); });
  }
  void scale(int64_t count, float alpha, float* x) override {
    enqueue([=, this] { base_.scale(count, alpha, x); });
  }
  void copy(int64_t count, const float* x, float* y) override {
    enqueue([=, this] { base_.copy(count, x, y); });
  }
  void fill(int64_t count, float value, float* x) override {
    enqueue([=, this] { base_.fill(count, value, x); });
  }
  void round_to_bf16(int64_t count, const float* x, float* y) override {
    enqueue([=, this] { base_.round_to_bf16(count, x, y); });
  }
  void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                     const math::WarpNorm& norm, float* out) override {
    enqueue([=, this] { base_.augment_batch(n, h, w, images, examples, norm, out); });
  }
  void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x, const float* gamma,
                               const float* beta, float* y, float* running_mean, float* running_var,
                               float* num_batches_tracked, double* scratch) override {
    enqueue([=, this] { base_.batchnorm_forward_batch(rows, c, eps, momentum, x, gamma, beta, y, running_mean, running_var,
                                  num_batches_tracked, scratch); });
  }
  void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean, const float* running_var, float* y,
                                 double* scratch) override {
    enqueue([=, this] { base_.batchnorm_forward_running(rows, c, eps, x, gamma, beta, running_mean, running_var, y, scratch); });
  }
  void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy, const float* gamma,
                                float* dx, float* dgamma, float* dbeta, double* scratch) override {
    enqueue([=, this] { base_.batchnorm_backward_batch(rows, c, eps, x, dy, gamma, dx, dgamma, dbeta, scratch); });
  }
  void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy,
                                  const float* gamma, const float* running_mean, const float* running_var, float* dx,
                                  float* dgamma, float* dbeta, double* scratch) override {
    enqueue([=, this] { base_.batchnorm_backward_running(rows, c, eps, x, dy, gamma, running_mean, running_var, dx, dgamma, dbeta,
                                     scratch); });
  }
  void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels, float smoothing,
                             float grad_scale, float* dlogits, double* loss_sum, double* correct) override {
    enqueue([=, this] { base_.softmax_cross_entropy(n, classes, logits, labels, smoothing, grad_scale, dlogits, loss_sum, correct); });
  }
  void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred,
           double* loss_sum) override {
    enqueue([=, this] { base_.mse(count, pred, target, grad_scale, dpred, loss_sum); });
  }
  void one_hot(int n, int classes, const int32_t* labels, float* targets) override {
    enqueue([=, this] { base_.one_hot(n, classes, labels, targets); });
  }
  void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                         float* y) override {
    enqueue([=, this] { base_.embedding_forward(count, vocab, dim, padding_idx, ids, table, y); });
  }
  void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                          float* dtable) override {
    enqueue([=, this] { base_.embedding_backward(count, vocab, dim, padding_idx, ids, dy, dtable); });
  }
  void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                   const RnnWeights& w, float* y, float* reserve, float* workspace) override {
    enqueue([=, this, hl = host_copy(g, host_lengths)] {
      base_.rnn_forward(g, x, hl.empty() ? nullptr : hl.data(), lengths, w, y, reserve, workspace);
    });
  }
  void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                    const RnnWeights& w, const float* y, const float* dy, float* reserve, float* dx,
                    const RnnGradients& dw, float* workspace) override {
    enqueue([=, this, hl = host_copy(g, host_lengths)] {
      base_.rnn_backward(g, x, hl.empty() ? nullptr : hl.data(), lengths, w, y, dy, reserve, dx, dw, workspace);
    });
  }
  void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y) override {
    enqueue([=, this] { base_.sequence_pool_forward(g, lengths, x, y); });
  }
  void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy,
                              float* dx) override {
    enqueue([=, this] { base_.sequence_pool_backward(g, lengths, dy, dx); });
  }
  void add_doubles(int count, const double* src, double* dst) override {
    enqueue([=, this] { base_.add_doubles(count, src, dst); });
  }
  void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
                const math::StepScalars& s) override {
    enqueue([=, this] { base_.sgd_step(count, params, grads, momentum_buf, h, s); });
  }
  void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                 const math::AdamHyper& h, const math::StepScalars& s) override {
    enqueue([=, this] { base_.adam_step(count, params, grads, exp_avg, exp_avg_sq, h, s); });
  }
  void sgd_step_at(int64_t count, float* params, const float* grads, float* momentum_buf, const math::SgdHyper& h,
                   const math::StepScalars* s) override {
    enqueue([=, this] { base_.sgd_step_at(count, params, grads, momentum_buf, h, s); });
  }
  void adam_step_at(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                    const math::AdamHyper& h, const math::StepScalars* s) override {
    enqueue([=, this] { base_.adam_step_at(count, params, grads, exp_avg, exp_avg_sq, h, s); });
  }
  void zero(void* p, size_t bytes) override {
    enqueue([=, this] { base_.zero(p, bytes); });
  }
  void record_nonfinite(const double* loss, int64_t count, const float* x, int64_t tag, int64_t* first_tag) override {
    enqueue([=, this] { base_.record_nonfinite(loss, count, x, tag, first_tag); });
  }
  void replay(int graph) override {
    enqueue([=, this] { base_.replay(graph); });
  }
  void drop_graph(int graph) override {
    enqueue([=, this] { base_.drop_graph(graph); });
  }
};

// Device memory that says CUDA: host memory filled with a NaN-ish pattern, so nothing
// reads as zero by luck.
class DeferredDevicePool final : public CachingPool {
 public:
  ~DeferredDevicePool() override { free_all(); }
  Device device() const override { return Device::CUDA; }

 private:
  void* system_allocate(size_t cls, size_t, std::string_view) override {
    void* p = std::aligned_alloc(256, cls);
    std::memset(p, 0x7f, cls);
    return p;
  }
  void system_free(void* p) override { std::free(p); }
};

// Registers the stand-in as the CUDA backend for its lifetime; the one before comes back after.
class DeferredDevice {
 public:
  DeferredDevice() {
    if (const DeviceBackend* b = cuda_backend()) previous_ = *b, had_ = true;
    DeviceBackend d;
    d.available = [](std::string*) { return true; };
    d.summary = [] { return std::string("stand-in device (tests/deferred_device.h)"); };
    d.versions = [] { return std::string("stand-in device"); };
    d.check_supported = [] {};
    d.make_pool = []() -> std::unique_ptr<MemoryPool> { return std::make_unique<DeferredDevicePool>(); };
    d.make_ops = [](MemoryPool&, KernelChoice, bool) -> std::unique_ptr<Ops> {
      return std::make_unique<DeferredOps>(cpu_ops(false));
    };
    d.alloc_pinned = [](size_t bytes) -> void* {
      void* p = std::malloc(bytes);
      std::memset(p, 0x5a, bytes);  // never written: reads as garbage labels
      deferred_pinned().push_back({static_cast<const char*>(p), bytes});
      return p;
    };
    d.free_pinned = [](void* p) {
      run_deferred();
      auto& pinned = deferred_pinned();  // forget it: malloc may hand the range out again, pageable
      std::erase_if(pinned, [p](const auto& block) { return block.first == static_cast<const char*>(p); });
      std::free(p);
    };
    set_cuda_backend(d);
  }
  ~DeferredDevice() {
    run_deferred();
    if (had_) set_cuda_backend(previous_);
    else clear_cuda_backend();
  }
  DeferredDevice(const DeferredDevice&) = delete;
  DeferredDevice& operator=(const DeferredDevice&) = delete;

 private:
  DeviceBackend previous_;
  bool had_ = false;
};

}  // namespace graft::testing
