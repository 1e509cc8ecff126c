// --grad-accumulation on the GPU: the micro-batches' gradients summed in device memory
// through the backend's ops give the larger batch's run (SGD with momentum, an uneven last
// accumulation at each epoch's end), and the CPU's accumulated run, for the native and the
// library kernels.
#include <sstream>

#include "gpu_testing.h"
#include "layers/zoo.h"
#include "runtime/backend_registry.h"
#include "runtime/cuda/backend.h"
#include "runtime/trainer.h"
#include "training.h"

namespace graft::testing {
namespace {

std::unique_ptr<Model> fmnist_cnn(MemoryPool& pool, uint64_t seed) {
  return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{12, 12, 1}, .num_classes = 3, .seed = seed},
                     pool);
}

TrainOptions options(int64_t batch, int accumulation) {
  TrainOptions o;
  o.epochs = 2;
  o.batch = batch;
  o.grad_accumulation = accumulation;
  o.seed = 7;
  o.optimizer.kind = "sgd";
  o.optimizer.lr = 0.05f;
  o.optimizer.momentum = 0.9f;
  return o;
}

class AccumulationGpu : public KernelSettingsGpuTest {
 protected:
  void check(KernelChoice kernels) {
    KernelSettings s;
    s.kernels = kernels;
    set_kernel_settings(s);
    SCOPED_TRACE(kernel_choice_name(kernels));
    const uint64_t init = test_seed();
    InMemorySource data(random_dataset(40, 3, Shape{12, 12, 1}));  // 2.5 batches of 16: a partial accumulation
    std::ostringstream log;

    cuda::DevicePool device;
    auto big = fmnist_cnn(device, init), accumulated = fmnist_cnn(device, init);
    train(*big, data, nullptr, options(16, 1), log);
    train(*accumulated, data, nullptr, options(8, 2), log);

    HostPool host;
    auto on_cpu = fmnist_cnn(host, init);
    train(*on_cpu, data, nullptr, options(8, 2), log);

    const auto a = params(*big), b = params(*accumulated), c = params(*on_cpu);
    EXPECT_LT(relative_error(b, a), 1e-4) << "accumulating two batches of 8 on the GPU is not one batch of 16";
    EXPECT_LT(relative_error(b, c), 1e-4) << "the GPU's accumulated run is not the CPU's";
    EXPECT_FALSE(b == params(*fmnist_cnn(host, init))) << "training changed nothing";
  }
};

TEST_F(AccumulationGpu, NativeKernelsAccumulateToTheLargerBatch) { check(KernelChoice::Native); }
TEST_F(AccumulationGpu, LibraryKernelsAccumulateToTheLargerBatch) { check(KernelChoice::Library); }

}  // namespace
}  // namespace graft::testing
