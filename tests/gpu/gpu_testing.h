// Helpers of the GPU suites (ctest label `gpu`): a fixture that skips visibly without a
// device, device arrays that upload, download and poison, and a lazily made LibraryContext.
// Every GPU test compares a device result against graft::cpu's reference on fresh random
// inputs (testing.h), with outputs poisoned with NaN before each run.
#pragma once
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/geometry.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/lib/context.h"
#include "base/cuda/cuda_check.h"
#include "runtime/backend_registry.h"
#include "runtime/cuda/backend.h"
#include "runtime/cuda/device.h"
#include "runtime/cuda/device_pool.h"
#include "testing.h"

namespace graft::testing {

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : n_(n) {
    if (n) GRAFT_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
  }
  ~DeviceArray() {
    if (ptr_) (void)cudaFree(ptr_);
  }
  DeviceArray(DeviceArray&& o) noexcept : ptr_(o.ptr_), n_(o.n_) { o.ptr_ = nullptr; o.n_ = 0; }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(n_, o.n_);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& v) {
    EXPECT_EQ(v.size(), n_);
    if (n_) GRAFT_CUDA_CHECK(cudaMemcpy(ptr_, v.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    GRAFT_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> v(n_);
    if (n_) GRAFT_CUDA_CHECK(cudaMemcpy(v.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

template <typename T>
DeviceArray<T> to_device(const std::vector<T>& v) {
  DeviceArray<T> d(v.size());
  d.upload(v);
  return d;
}

// A device output filled with NaN, so an element the kernel forgot to write fails.
inline DeviceArray<float> poisoned_device(size_t n) { return to_device(poisoned(n)); }

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason;
    if (!cuda::device_available(&reason)) GTEST_SKIP() << "no CUDA device: " << reason;
    cuda::check_device_supported();
    GRAFT_CUDA_CHECK(cudaStreamCreate(&stream_));
  }
  void TearDown() override {
    if (stream_) end_abandoned_capture();  // only where SetUp found a device
    ctx_.reset();
    pool_.reset();
    if (stream_) (void)cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }
  cudaStream_t stream() const { return stream_; }
  // A test that threw between begin_capture and end_capture leaves graft's one compute
  // stream recording, and every later test in the process would be recorded instead of run:
  // end it here (capture is per thread, TearDown runs on the test's) and fail the test.
  static void end_abandoned_capture() {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(cuda::compute_stream(), &status) != cudaSuccess || status == cudaStreamCaptureStatusNone) {
      (void)cudaGetLastError();
      return;
    }
    cudaGraph_t graph = nullptr;
    (void)cudaStreamEndCapture(cuda::compute_stream(), &graph);
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    ADD_FAILURE() << "the test left graft's compute stream capturing; the capture was ended";
  }
  cuda::DevicePool& pool() {
    if (!pool_) pool_ = std::make_unique<cuda::DevicePool>();
    return *pool_;
  }
  lib::LibraryContext& lib() {
    if (!ctx_) ctx_ = std::make_unique<lib::LibraryContext>(pool());
    return *ctx_;
  }

 private:
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::DevicePool> pool_;
  std::unique_ptr<lib::LibraryContext> ctx_;
};

// For tests that train through the CUDA backend under chosen kernel settings: registers the
// backend, and puts back the settings the test changed.
class KernelSettingsGpuTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    register_cuda_backend();
    saved_ = kernel_settings();
  }
  void TearDown() override {
    if (!IsSkipped()) set_kernel_settings(saved_);
    GpuTest::TearDown();
  }

 private:
  KernelSettings saved_;
};

inline std::string describe(const Conv2dGeometry& g) {
  std::ostringstream s;
  s << "conv n=" << g.n << " h=" << g.h << " w=" << g.w << " c_in=" << g.c_in << " c_out=" << g.c_out << " k=" << g.kh
    << "x" << g.kw << " stride=" << g.stride << " pad=" << g.pad;
  return s.str();
}
inline std::string describe(const Pool2dGeometry& g) {
  std::ostringstream s;
  s << "pool n=" << g.n << " h=" << g.h << " w=" << g.w << " c=" << g.c << " k=" << g.kh << "x" << g.kw
    << " stride=" << g.stride << " pad=" << g.pad;
  return s.str();
}

enum class Impl { Native, Library };
inline const char* name(Impl i) { return i == Impl::Native ? "native" : "library"; }

}  // namespace graft::testing
