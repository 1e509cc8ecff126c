// The whole executor on the GPU: three training steps of fmnist_cnn and of a small VGG
// (vgg11, widths / 8, 32x32, a grafted head) on the CPU and on the GPU (native and library
// kernels) from the same initial parameters and batches; loss and every parameter must agree
// (relative error < 1e-4), steps 2..N must make no cudaMalloc, and a checkpoint written from
// the GPU model must load on the CPU and give the same logits. Also --kernels auto (each
// layer on whichever was faster), --precision bf16 on both, and the frozen base in chunks.
#include <filesystem>
#include <functional>

#include "gpu_testing.h"
#include "layers/zoo.h"
#include "runtime/backend_registry.h"
#include "runtime/checkpoint.h"
#include "runtime/cuda/backend.h"
#include "runtime/executor.h"
#include "runtime/optimizer.h"

namespace graft::testing {
namespace {

struct Case {
  ModelSpec spec;
  int64_t batch;
};

Case fmnist() {
  Case c;
  c.spec.architecture = "fmnist_cnn";
  c.spec.sample_shape = Shape{28, 28, 1};
  c.spec.num_classes = 10;
  c.spec.seed = 3;
  c.batch = 8;
  return c;
}

Case small_vgg() {
  Case c;
  c.spec.architecture = "vgg11";
  c.spec.sample_shape = Shape{32, 32, 3};
  c.spec.num_classes = 5;
  c.spec.seed = 5;
  c.spec.width_divisor = 8;
  c.spec.head = "flatten,dense:32,relu,dense:N";
  c.batch = 4;
  return c;
}

struct StepsResult {
  bool graph = false;  // the steps ran as a captured CUDA graph
  std::vector<double> losses;
  std::vector<float> params;
  size_t mallocs_after_first = 0, mallocs_at_end = 0;
};

constexpr int kSteps = 3;

// Batches: the same on every backend (seeded per step).
void fill_batch(Executor& ex, const Model& m, int step, int classes) {
  std::mt19937_64 g(1000 + uint64_t(step));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int64_t count = ex.batch() * m.sample_shape().numel();
  for (int64_t i = 0; i < count; ++i) ex.input()[i] = u(g);
  for (int64_t i = 0; i < ex.batch(); ++i) ex.labels()[i] = int32_t(g() % uint64_t(classes));
}

// `in_step` (graphs only) runs inside each step, before the optimizer's update: inside the
// recording when the step is captured.
StepsResult train_steps(const Case& c, MemoryPool& pool, std::optional<KernelChoice> kernels, const std::string& save = {},
                        bool bf16 = false, bool graphs = false, const std::string& optimizer = "sgd",
                        const std::function<void(MemoryPool&, int)>& in_step = {}) {
  auto model = build_model(c.spec, pool);
  ExecutorOptions eo;
  eo.batch = c.batch;
  eo.kernels = kernels;
  eo.bf16 = bf16;
  Executor ex(*model, eo);
  ex.set_step_graphs(graphs);
  OptimizerConfig oc;
  oc.kind = optimizer;
  oc.lr = optimizer == "sgd" ? 0.01f : 1e-3f;
  if (optimizer == "sgd") oc.momentum = 0.9f;
  Optimizer opt(oc, ex.trainable_count(), pool);
  opt.set_scalars_in_memory(graphs);
  int step = 0;
  const Executor::StepHooks with_optimizer{[&] { opt.prepare(ex.trainable_segments(), oc.lr); },
                                           [&] {
                                             if (in_step) in_step(pool, step);
                                             opt.launch(ex.trainable_segments());
                                           }};
  StepsResult r;
  for (step = 0; step < kSteps; ++step) {
    fill_batch(ex, *model, step, c.spec.num_classes);
    if (graphs) {  // the optimizer inside the recorded step, its scalars in device memory
      ex.forward_backward(ex.batch(), step, &with_optimizer);
    } else {
      ex.forward_backward(ex.batch(), step);
      opt.step(ex.trainable_segments(), oc.lr);
    }
    r.losses.push_back(ex.last_batch_loss());
    if (step == 0) r.mallocs_after_first = pool.stats().system_allocations;
  }
  r.mallocs_at_end = pool.stats().system_allocations;
  r.graph = ex.step_graph_captured();
  const float* host = model->host_params();
  r.params.assign(host, host + model->total_param_count());
  if (!save.empty()) save_checkpoint(save, *model, &opt, ex.trainable_segments(), CheckpointInfo{});
  return r;
}

std::vector<float> params_of(const Model& m) {
  const float* host = m.host_params();
  return {host, host + m.total_param_count()};
}

class TrainingGpu : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    register_cuda_backend();
  }

  // bf16 (the emulation: the same rounded operands on both): fp32 accumulation order
  // differs, and a sum that lands on the other side of a bf16 rounding boundary moves that
  // operand by one bf16 ulp (2^-8), hence the looser bound.
  void compare(const Case& c, bool bf16 = false) {
    const double tolerance = bf16 ? 1e-2 : 1e-4;
    HostPool host;
    const StepsResult cpu = train_steps(c, host, std::nullopt, {}, bf16);
    for (KernelChoice k : {KernelChoice::Native, KernelChoice::Library, KernelChoice::Auto}) {
      SCOPED_TRACE(std::string(c.spec.architecture) + " " + kernel_choice_name(k) + (bf16 ? " bf16" : ""));
      cuda::DevicePool dev;
      const StepsResult gpu = train_steps(c, dev, k, {}, bf16);
      ASSERT_EQ(gpu.losses.size(), cpu.losses.size());
      for (size_t s = 0; s < cpu.losses.size(); ++s)
        EXPECT_LT(std::abs(gpu.losses[s] - cpu.losses[s]), tolerance * std::max(1.0, std::abs(cpu.losses[s])))
            << "step " << s << ": gpu " << gpu.losses[s] << ", cpu " << cpu.losses[s];
      auto model = build_model(c.spec, host);  // for the parameter names and offsets
      for (const auto& p : model->params()) {
        const size_t n = size_t(p.spec.shape.numel());
        EXPECT_LT(relative_error(gpu.params.data() + p.offset, cpu.params.data() + p.offset, n), tolerance) << p.name;
      }
      EXPECT_EQ(gpu.mallocs_at_end, gpu.mallocs_after_first) << "cudaMalloc calls in steps 2.." << kSteps;
    }
  }
};

TEST_F(TrainingGpu, FmnistCnnMatchesCpu) { compare(fmnist()); }
TEST_F(TrainingGpu, SmallVggMatchesCpu) { compare(small_vgg()); }
TEST_F(TrainingGpu, SmallVggBf16MatchesCpuBf16) { compare(small_vgg(), /*bf16=*/true); }

TEST_F(TrainingGpu, GpuCheckpointLoadsOnCpuWithTheSameLogits) {
  const Case c = fmnist();
  const auto path = std::filesystem::temp_directory_path() / "graft_gpu_checkpoint_test.safetensors";
  cuda::DevicePool dev;
  train_steps(c, dev, KernelChoice::Library, path.string());

  auto gpu_model = build_model(c.spec, dev);
  load_parameters(*gpu_model, read_safetensors(path.string()), path.string(), LoadOptions{/*strict=*/true, {}});
  HostPool host;
  auto cpu_model = build_model(c.spec, host);
  load_parameters(*cpu_model, read_safetensors(path.string()), path.string(), LoadOptions{/*strict=*/true, {}});

  ExecutorOptions eo;
  eo.batch = c.batch;
  eo.training = false;
  Executor gex(*gpu_model, eo), cex(*cpu_model, eo);
  fill_batch(gex, *gpu_model, 7, c.spec.num_classes);
  fill_batch(cex, *cpu_model, 7, c.spec.num_classes);
  gex.forward(c.batch, false, 0);
  cex.forward(c.batch, false, 0);
  const size_t n = size_t(cex.output_shape(c.batch).numel());
  const std::vector<float> g(gex.output(), gex.output() + n), h(cex.output(), cex.output() + n);
  EXPECT_LT(relative_error(g, h), 1e-4);
  std::filesystem::remove(path);
}

// Bit equality of two library-kernel runs needs --deterministic: otherwise cuDNN may choose
// backward algorithms that sum with atomics (and cuBLASLt split-K), different run to run.
// The comparisons against the CPU above hold a tolerance and run without it.
class DeterministicKernels {
 public:
  DeterministicKernels() : saved_(kernel_settings()) {
    KernelSettings s = saved_;
    s.deterministic = true;
    set_kernel_settings(s);
  }
  ~DeterministicKernels() { set_kernel_settings(saved_); }
  DeterministicKernels(const DeterministicKernels&) = delete;
  DeterministicKernels& operator=(const DeterministicKernels&) = delete;

 private:
  KernelSettings saved_;
};

// CUDA graphs (--cuda-graphs): step 1 runs, step 2 is captured and replayed, step 3 replays,
// the optimizer's update inside (its scalars read from device memory); the same kernels in
// the same order, so the same bits as running them one by one (deterministic algorithms),
// dropout included (a dropout head on both: its step is read from device memory each replay).
TEST_F(TrainingGpu, StepGraphsGiveTheSameBits) {
  const DeterministicKernels deterministic;
  Case vgg = small_vgg(), cnn = fmnist();
  vgg.spec.head = "flatten,dense:32,relu,dropout:0.3,dense:N";
  cnn.spec.head = "flatten,dense:64,relu,dropout:0.5,dense:N";
  for (const Case& c : {vgg, cnn})
    for (KernelChoice k : {KernelChoice::Native, KernelChoice::Library}) {
      SCOPED_TRACE(std::string(c.spec.architecture) + " " + kernel_choice_name(k));
      cuda::DevicePool a, b;
      // Adam: its bias corrections change every step, so a replay that read stale scalars
      // would show.
      const StepsResult eager = train_steps(c, a, k, {}, false, false, "adam");
      const StepsResult graph = train_steps(c, b, k, {}, false, true, "adam");
      EXPECT_TRUE(graph.graph);
      EXPECT_EQ(graph.losses, eager.losses);
      EXPECT_TRUE(graph.params == eager.params);
      EXPECT_EQ(graph.mallocs_at_end, graph.mallocs_after_first);
    }
}

// A capture that meets a pool growth (here an allocation inside the recorded step, as a shape
// first seen there would make) is refused with a graft::Error; the executor abandons the
// recording, says why on stderr, and runs that step and the rest eagerly: the same bits as
// an eager run (deterministic algorithms), and no graph.
TEST_F(TrainingGpu, ACaptureThatMeetsAGrowthFallsBackToEagerSteps) {
  const DeterministicKernels deterministic;
  const size_t grow_bytes = (size_t{48} << 20) + size_t(random_int(0, 1 << 20));  // a class nothing cached
  const auto grow_in_step_1 = [&](MemoryPool& pool, int step) {
    if (step == 1) PoolBuffer grown(pool, grow_bytes, "test growth");
  };
  for (KernelChoice k : {KernelChoice::Native, KernelChoice::Library}) {
    SCOPED_TRACE(kernel_choice_name(k));
    const Case c = fmnist();
    cuda::DevicePool a, b;
    const StepsResult eager = train_steps(c, a, k, {}, false, false, "adam");
    ::testing::internal::CaptureStderr();
    const StepsResult fell_back = train_steps(c, b, k, {}, false, true, "adam", grow_in_step_1);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_FALSE(fell_back.graph);
    EXPECT_TRUE(has(err, "cuda graphs: off") && has(err, "had to grow") && has(err, "test growth")) << err;
    EXPECT_EQ(fell_back.losses, eager.losses);
    EXPECT_TRUE(fell_back.params == eager.params);
  }
}

// The frozen base in chunks on the device (--frozen-chunk): the same steps as whole batches
// (the kernels see fewer rows, so close rather than bitwise) and a lower pool peak.
TEST_F(TrainingGpu, FrozenChunksMatchWholeBatchesWithALowerPeak) {
  Case c = small_vgg();
  c.batch = 8;
  struct Result {
    std::vector<double> losses;
    std::vector<float> params;
    size_t peak = 0;
  };
  auto run = [&](int64_t chunk) {
    cuda::DevicePool dev;
    auto model = build_model(c.spec, dev);
    ExecutorOptions eo;
    eo.batch = c.batch;
    eo.kernels = KernelChoice::Library;
    eo.frozen = resolve_freeze_patterns(*model, {"features.*"});
    if (chunk) {
      for (int n = 0; n < model->num_nodes(); ++n)
        if (model->nodes()[size_t(n)].name == "head.0") eo.chunk_through = n;
      eo.chunk = chunk;
    }
    Executor ex(*model, eo);
    OptimizerConfig oc;
    oc.kind = "adam";
    oc.lr = 1e-3f;
    Optimizer opt(oc, ex.trainable_count(), dev);
    Result r;
    for (int step = 0; step < kSteps; ++step) {
      fill_batch(ex, *model, step, c.spec.num_classes);
      ex.forward(ex.batch(), true, step);
      ex.backward(ex.batch());
      opt.step(ex.trainable_segments(), oc.lr);
      r.losses.push_back(ex.last_batch_loss());
    }
    r.params = params_of(*model);
    r.peak = dev.stats().peak_bytes_in_use;
    return r;
  };
  const Result whole = run(0), chunked = run(3);
  for (size_t s = 0; s < whole.losses.size(); ++s) EXPECT_NEAR(chunked.losses[s], whole.losses[s], 1e-4) << s;
  EXPECT_LT(relative_error(chunked.params, whole.params), 1e-4);
  EXPECT_LT(chunked.peak, whole.peak);
}

}  // namespace
}  // namespace graft::testing
