// Exact resume on the GPU (issue 6, --deterministic): N epochs straight vs N/2, a
// checkpoint, and N/2 resumed into a fresh model give the same parameters bit for bit, and
// two straight runs agree bit for bit, for the native kernels and for the library kernels
// restricted to deterministic algorithms. The model is a small VGG with dropout in the head
// (the counter-based dropout must replay too) on random data, shuffled every epoch.
#include <cstring>
#include <sstream>

#include "gpu_testing.h"
#include "layers/zoo.h"
#include "runtime/backend_registry.h"
#include "runtime/cuda/backend.h"
#include "runtime/trainer.h"
#include "training.h"

namespace graft::testing {
namespace {

std::unique_ptr<Model> small_vgg(MemoryPool& pool, uint64_t seed) {
  ModelSpec s;
  s.architecture = "vgg11";
  s.sample_shape = Shape{32, 32, 3};
  s.num_classes = 4;
  s.seed = seed;
  s.width_divisor = 8;
  s.head = "flatten,dense:32,relu,dropout:0.3,dense:N";
  return build_model(s, pool);
}

TrainOptions options(int epochs, uint64_t seed) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 8;
  o.seed = seed;
  o.optimizer.kind = "adamw";
  o.optimizer.lr = 1e-3f;
  o.optimizer.weight_decay = 0.01f;
  o.schedule.kind = "step";  // depends on the step only, so 2 + 2 epochs is the same run as 4
  o.schedule.step_size = 5;
  o.schedule.gamma = 0.5f;
  return o;
}

size_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n + (a.size() > b.size() ? a.size() - b.size() : b.size() - a.size());
}

class ResumeGpu : public KernelSettingsGpuTest {
 protected:
  void check(KernelChoice kernels) {
    KernelSettings s;
    s.kernels = kernels;
    s.deterministic = true;
    set_kernel_settings(s);
    SCOPED_TRACE(kernel_choice_name(kernels));

    const TempDir dir;
    const uint64_t init = test_seed() % 100000, seed = init + 1;
    InMemorySource data(random_dataset(52, 4, Shape{32, 32, 3}));  // 6.5 batches: a partial last batch
    std::ostringstream log;
    cuda::DevicePool pool;

    auto straight = small_vgg(pool, init);
    train(*straight, data, nullptr, options(4, seed), log);
    auto again = small_vgg(pool, init);
    train(*again, data, nullptr, options(4, seed), log);

    auto first = small_vgg(pool, init);
    TrainOptions half = options(2, seed);
    half.save_path = dir.file("half.safetensors");
    train(*first, data, nullptr, half, log);
    auto resumed = small_vgg(pool, init + 99);  // replaced by the checkpoint's parameters
    TrainOptions rest = options(4, seed);
    rest.resume_path = half.save_path;
    train(*resumed, data, nullptr, rest, log);
    const auto a = params(*straight), b = params(*again), c = params(*resumed);
    EXPECT_EQ(differing(a, b), 0u) << "two identical runs differ (not deterministic)";
    EXPECT_EQ(differing(a, c), 0u) << "a resumed run differs from an uninterrupted one";
    EXPECT_NE(differing(a, params(*small_vgg(pool, init))), 0u) << "training changed nothing";
  }
};

TEST_F(ResumeGpu, DeterministicNativeKernelsResumeBitIdentically) { check(KernelChoice::Native); }
TEST_F(ResumeGpu, DeterministicLibraryKernelsResumeBitIdentically) { check(KernelChoice::Library); }

}  // namespace
}  // namespace graft::testing
