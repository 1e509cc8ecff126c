// The public API on a device (label gpu): a CUDA model fed device pointers on the caller's
// stream trains as the same model fed the same batches from host memory (within fp32's
// tolerance: cuDNN may pick non-deterministic algorithms), logits come back into device
// memory, and a host pointer
// given as device memory, or device memory given as host, is a named error. Two CUDA models
// trained on two threads at once (each recording and replaying its step graph on graft's one
// compute stream) reach what each reaches alone. Skips visibly without a device.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "gpu_testing.h"
#include "graft/graft.h"
#include "graft/graft.hpp"

namespace graft::testing {
namespace {

class ApiGpu : public GpuTest {};

api::ModelSpec cuda_spec(int classes) {
  api::ModelSpec s;
  s.classes = classes;
  s.head = "flatten,dense:16,relu,dense:N";
  s.seed = test_seed();
  s.device = api::Device::Cuda;
  return s;
}

TEST_F(ApiGpu, DevicePointersOnTheCallersStreamTrainAsHostOnes) {
  const int classes = random_int(2, 6);
  const int64_t n = random_int(2, 12);
  api::TrainSettings settings;
  settings.batch = n;
  settings.optimizer.lr = 0.01f;
  api::Model on_host(cuda_spec(classes)), on_device(cuda_spec(classes));
  for (api::Model* m : {&on_host, &on_device}) {
    m->freeze({"conv1"});
    m->configure(settings);
  }
  cudaStream_t stream = nullptr;
  GRAFT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  // Pinned sources, after a 30 ms pause queued on the caller's stream: the copies land late,
  // so a graft that did not wait for the caller's stream would read the old batch.
  float* pinned_x = nullptr;
  int32_t* pinned_y = nullptr;
  GRAFT_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned_x), size_t(n) * 28 * 28 * sizeof(float)));
  GRAFT_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned_y), size_t(n) * sizeof(int32_t)));
  DeviceArray<float> images(size_t(n) * 28 * 28);
  DeviceArray<int32_t> labels(static_cast<size_t>(n));
  DeviceArray<float> logits(size_t(n) * size_t(classes));
  for (int step = 0; step < 4; ++step) {
    const auto x = random_floats(size_t(n) * 28 * 28, 0.0f, 1.0f);
    std::vector<int32_t> y;
    for (int64_t i = 0; i < n; ++i) y.push_back(random_int(0, classes - 1));
    // The caller's producer writes the batch on its own stream; graft must wait for it.
    GRAFT_CUDA_CHECK(cudaStreamSynchronize(stream));  // the pinned sources are free to refill
    std::copy(x.begin(), x.end(), pinned_x);
    std::copy(y.begin(), y.end(), pinned_y);
    GRAFT_CUDA_CHECK(cudaLaunchHostFunc(
        stream, [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }, nullptr));
    GRAFT_CUDA_CHECK(cudaMemcpyAsync(images.get(), pinned_x, x.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
    GRAFT_CUDA_CHECK(cudaMemcpyAsync(labels.get(), pinned_y, y.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
    api::Batch host{.images = x.data(), .labels = y.data(), .shape = {n, 28, 28, 1}};
    api::Batch device{.images = images.get(), .labels = labels.get(), .shape = {n, 28, 28, 1},
                      .memory = api::Memory::Device, .stream = stream};
    // Device batches go straight into the input buffer; a host batch between two of them
    // must not find the previous device batch there.
    const double a = on_host.train_step(host).loss, b = on_device.train_step(step == 1 ? host : device).loss;
    EXPECT_LT(std::abs(a - b), kFp32Tolerance * std::max(1.0, std::abs(a))) << "step " << step;
  }
  EXPECT_LT(relative_error(on_host.parameter("head.1.weight"), on_device.parameter("head.1.weight")), kFp32Tolerance);
  api::Batch device{.images = images.get(), .shape = {n, 28, 28, 1}, .memory = api::Memory::Device, .stream = stream};
  std::vector<float> expected(size_t(n) * size_t(classes));
  logits.upload(poisoned(logits.size()));
  on_device.forward(device, logits.get(), api::Memory::Device);
  on_device.forward(device, expected.data());
  EXPECT_EQ(logits.download(), expected);  // the same forward, copied onto the caller's stream
  GRAFT_CUDA_CHECK(cudaStreamDestroy(stream));
  GRAFT_CUDA_CHECK(cudaFreeHost(pinned_x));
  GRAFT_CUDA_CHECK(cudaFreeHost(pinned_y));
}

TEST_F(ApiGpu, HostAndDeviceMemoryMixedUpAreNamedErrors) {
  api::Model model(cuda_spec(3));
  api::TrainSettings settings;
  settings.batch = 4;
  model.configure(settings);
  const auto x = random_floats(4 * 28 * 28);
  const std::vector<int32_t> y = {0, 1, 2, 0};
  api::Batch wrong{.images = x.data(), .labels = y.data(), .shape = {4, 28, 28, 1}, .memory = api::Memory::Device};
  try {
    model.train_step(wrong);
    ADD_FAILURE() << "host memory given as device memory was accepted";
  } catch (const api::Error& e) {
    EXPECT_TRUE(has(e.what(), "Batch::images")) << e.what();
    EXPECT_TRUE(has(e.what(), "host memory")) << e.what();
  }
  // The model still trains afterwards, and the C API says the same through a status.
  wrong.memory = api::Memory::Host;
  EXPECT_TRUE(std::isfinite(model.train_step(wrong).loss));
  graft_model* m = nullptr;
  ASSERT_EQ(graft_model_create("fmnist_cnn", nullptr, 3, nullptr, 1, GRAFT_DEVICE_CUDA, &m), GRAFT_OK)
      << graft_model_last_error(m);
  ASSERT_EQ(graft_model_configure(m, 4, "sgd", 0.1f, 0, 0), GRAFT_OK);
  const int64_t shape[4] = {4, 28, 28, 1};
  EXPECT_EQ(graft_model_train_step(m, x.data(), y.data(), shape, GRAFT_MEMORY_DEVICE, nullptr, nullptr), GRAFT_ERROR);
  EXPECT_TRUE(has(graft_model_last_error(m), "host memory")) << graft_model_last_error(m);
  graft_model_destroy(m);
}

// The API promises different models may train on different threads. CUDA models share
// graft's compute stream, which a step graph records: the calls take turns, so neither
// model's kernels land in the other's graph and both train as they would alone.
TEST_F(ApiGpu, TwoModelsOnTwoThreadsTrainAsEachAlone) {
  const int classes = random_int(2, 6), steps = random_int(6, 10);
  const int64_t n = random_int(2, 12);
  api::TrainSettings settings;
  settings.batch = n;
  settings.optimizer.lr = 0.01f;
  struct Data {
    std::vector<std::vector<float>> x;
    std::vector<std::vector<int32_t>> y;
  };
  std::vector<Data> data(2);
  for (Data& d : data)
    for (int s = 0; s < steps; ++s) {
      d.x.push_back(random_floats(size_t(n) * 28 * 28, 0.0f, 1.0f));
      d.y.emplace_back();
      for (int64_t i = 0; i < n; ++i) d.y.back().push_back(random_int(0, classes - 1));
    }
  auto train = [&](api::Model& m, const Data& d, std::vector<double>& losses) {
    for (int s = 0; s < steps; ++s) {
      api::Batch b{.images = d.x[size_t(s)].data(), .labels = d.y[size_t(s)].data(), .shape = {n, 28, 28, 1}};
      losses.push_back(m.train_step(b).loss);
    }
  };
  std::vector<std::vector<double>> alone(2), together(2);
  std::vector<std::vector<float>> alone_w(2), together_w(2);
  for (int k = 0; k < 2; ++k) {
    api::Model m(cuda_spec(classes));
    m.configure(settings);
    train(m, data[size_t(k)], alone[size_t(k)]);
    alone_w[size_t(k)] = m.parameter("head.1.weight");
  }
  {
    api::Model a(cuda_spec(classes)), b(cuda_spec(classes));
    a.configure(settings);
    b.configure(settings);
    std::thread other([&] { train(b, data[1], together[1]); });
    train(a, data[0], together[0]);
    other.join();
    together_w[0] = a.parameter("head.1.weight");
    together_w[1] = b.parameter("head.1.weight");
  }
  for (int k = 0; k < 2; ++k) {
    SCOPED_TRACE("model " + std::to_string(k));
    ASSERT_EQ(together[size_t(k)].size(), alone[size_t(k)].size());
    for (size_t s = 0; s < alone[size_t(k)].size(); ++s)
      EXPECT_LT(std::abs(together[size_t(k)][s] - alone[size_t(k)][s]),
                kFp32Tolerance * std::max(1.0, std::abs(alone[size_t(k)][s])))
          << "step " << s;
    EXPECT_LT(relative_error(together_w[size_t(k)], alone_w[size_t(k)]), kFp32Tolerance);
  }
}

}  // namespace
}  // namespace graft::testing
