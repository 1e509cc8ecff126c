// The NCCL communicator on one rank (the GPU machine has one GPU and no MPI): the all-reduce
// of random buckets, each filled by compute-stream work it must wait for, leaves them as they
// were; host sums still go to the wrapped communicator; and a training step whose gradients
// go through the GradientReducer over NCCL (several buckets, started during backward) equals
// the step without it, gradients and updated parameters bitwise.
#include <algorithm>
#include <random>

#include "gpu_testing.h"
#include "kernels/cuda/ops_cuda.h"
#include "layers/zoo.h"
#include "runtime/cuda/backend.h"
#include "runtime/executor.h"
#include "runtime/gradient_reducer.h"
#include "runtime/optimizer.h"
#if defined(GRAFT_HAVE_NCCL)
#include "runtime/nccl/nccl_communicator.h"
#endif

namespace graft::testing {
namespace {

class NcclGpu : public KernelSettingsGpuTest {  // restores the kernel settings a test changes
 protected:
  void SetUp() override {
#if !defined(GRAFT_HAVE_NCCL)
    GTEST_SKIP() << "built without NCCL (cmake/graft_nccl.cmake found no nccl.h / libnccl)";
#else
    KernelSettingsGpuTest::SetUp();
#endif
  }
};

#if defined(GRAFT_HAVE_NCCL)
std::vector<float> download(const float* device, size_t n) {
  GRAFT_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> v(n);
  GRAFT_CUDA_CHECK(cudaMemcpy(v.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost));
  return v;
}

TEST_F(NcclGpu, OneRankAllReduceKeepsEveryBucketAfterTheWorkThatFilledIt) {
  std::mt19937_64& gen = rng();
  auto comm = nccl_communicator(single_process_communicator(), 60);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_NE(comm->describe().find("NCCL"), std::string::npos) << comm->describe();
  const cudaStream_t compute = cuda::compute_stream();
  for (int trial = 0; trial < 4; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 300000)(gen);
    const std::vector<float> values = random_floats(n);
    DeviceArray<float> src = to_device(values);
    DeviceArray<float> buf = poisoned_device(n), out = poisoned_device(n);
    // Random bucket edges; each bucket is copied in on the compute stream and summed at once,
    // before the host waits for anything: the side stream must wait for the copy.
    size_t begin = 0;
    int buckets = 0;
    while (begin < n) {
      const size_t end = std::min(n, begin + std::uniform_int_distribution<size_t>(1, n)(gen));
      GRAFT_CUDA_CHECK(cudaMemcpyAsync(buf.get() + begin, src.get() + begin, (end - begin) * sizeof(float),
                                       cudaMemcpyDeviceToDevice, compute));
      comm->start_sum(buf.get() + begin, end - begin, "the test's bucket sum");
      begin = end;
      ++buckets;
    }
    comm->wait_all("the test's bucket sums");
    // After wait_all the compute stream reads the sums (what the optimizer does).
    GRAFT_CUDA_CHECK(cudaMemcpyAsync(out.get(), buf.get(), n * sizeof(float), cudaMemcpyDeviceToDevice, compute));
    const std::vector<float> got = download(out.get(), n);
    for (size_t i = 0; i < n; ++i)
      ASSERT_EQ(got[i], values[i]) << "element " << i << " of " << n << " in " << buckets << " buckets";
  }
  // Host values (metrics, control) go over the host communicator, untouched on one rank.
  double host_value = std::uniform_real_distribution<double>(-5, 5)(gen);
  const double before = host_value;
  comm->sum(&host_value, 1, "the test's host sum");
  EXPECT_EQ(host_value, before);
  EXPECT_TRUE(comm->any(true, "the test's any"));
  EXPECT_FALSE(comm->any(false, "the test's any"));
}

TEST_F(NcclGpu, TrainingStepThroughTheNcclReducerEqualsTheStepWithoutIt) {
  std::mt19937_64& gen = rng();
  auto comm = nccl_communicator(single_process_communicator(), 60);
  const uint64_t seed = gen();
  constexpr int64_t kBatch = 6;
  // Bit equality of two library-kernel runs needs cuDNN's deterministic algorithms (some
  // backward ones add with atomics); set before the executors make their kernels.
  KernelSettings deterministic = kernel_settings();
  deterministic.deterministic = true;
  set_kernel_settings(deterministic);
  cuda::DevicePool pool_a, pool_b;
  const ModelSpec spec{.architecture = "fmnist_cnn", .sample_shape = Shape{28, 28, 1}, .num_classes = 10, .seed = seed};
  auto model_a = build_model(spec, pool_a);
  auto model_b = build_model(spec, pool_b);
  ExecutorOptions eo;
  eo.batch = kBatch;
  Executor plain(*model_a, eo), reduced(*model_b, eo);
  const int64_t n = plain.trainable_count();
  ASSERT_EQ(n, reduced.trainable_count());
  // Small buckets: several, started from the listener while backward still runs.
  const size_t bucket_bytes = std::uniform_int_distribution<size_t>(64, size_t(n))(gen);
  GradientReducer reducer(*comm, reduced, bucket_bytes);
  ASSERT_GT(reducer.buckets().size(), 1u);
  OptimizerConfig oc;
  oc.kind = "sgd";
  oc.lr = 0.01f;
  oc.momentum = 0.9f;
  Optimizer opt_a(oc, n, pool_a), opt_b(oc, n, pool_b);
  for (int step = 0; step < 2; ++step) {
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (Executor* ex : {&plain, &reduced}) {
      std::mt19937_64 batch_gen(seed + uint64_t(step));
      for (int64_t i = 0; i < kBatch * 28 * 28; ++i) ex->input()[i] = u(batch_gen);
      for (int64_t i = 0; i < kBatch; ++i) ex->labels()[i] = int32_t(batch_gen() % 10u);
    }
    plain.forward(kBatch, true, step);
    plain.backward(kBatch);
    reducer.begin_step();
    reduced.forward(kBatch, true, step);
    reduced.backward(kBatch);
    reducer.finish(1.0f);
    const std::vector<float> ga = download(plain.gradients(), size_t(n)), gb = download(reduced.gradients(), size_t(n));
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(ga[size_t(i)], gb[size_t(i)]) << "gradient " << i << ", step " << step;
    opt_a.step(plain.trainable_segments(), oc.lr);
    opt_b.step(reduced.trainable_segments(), oc.lr);
  }
  GRAFT_CUDA_CHECK(cudaDeviceSynchronize());
  const float* pa = model_a->host_params();
  const float* pb = model_b->host_params();
  for (int64_t i = 0; i < model_a->total_param_count(); ++i) ASSERT_EQ(pa[i], pb[i]) << "parameter " << i;
}

// The device each local rank takes (the rule itself: tests/device_for_rank_test.cpp): with
// one visible GPU (a launcher binding one per rank, as the lent machine) every local rank
// takes it; with several, local rank i takes GPU i and one past the last is refused by name.
TEST_F(NcclGpu, EachLocalRankTakesItsGpu) {
  int devices = 0;
  GRAFT_CUDA_CHECK(cudaGetDeviceCount(&devices));
  const int local_rank = devices == 1 ? random_int(0, 7) : random_int(0, devices - 1);
  select_device_for_local_rank(local_rank, 3);
  int current = -1;
  GRAFT_CUDA_CHECK(cudaGetDevice(&current));
  EXPECT_EQ(current, devices == 1 ? 0 : local_rank);
  if (devices > 1) {
    try {
      select_device_for_local_rank(devices, 7);
      ADD_FAILURE() << "local rank " << devices << " of a node with " << devices << " GPUs was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("rank 7"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("ranks per node"), std::string::npos) << e.what();
    }
  }
  select_device_for_local_rank(0, 0);
}
#else
TEST_F(NcclGpu, NeedsNccl) {}
#endif

}  // namespace
}  // namespace graft::testing
