// --augment-on device on the GPU: an image folder's raw batches (uint8 at the input size and
// each example's warp) staged, copied and augmented on the device by the executor give the
// logits the CPU gives on the decode workers' float batches, batch after batch (the staging
// buffers alternate). Training with them is tests/deferred_device_test.cpp's (to the CPU's
// bits, on the stand-in device).
#include <filesystem>

#include "gpu_testing.h"
#include "layers/zoo.h"
#include "runtime/backend_registry.h"
#include "runtime/cuda/backend.h"
#include "runtime/executor.h"
#include "runtime/image_folder.h"
#include "tests/image_writing.h"

namespace graft::testing {
namespace {

namespace fs = std::filesystem;

class AugmentStepGpu : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    register_cuda_backend();
  }
};

TEST_F(AugmentStepGpu, RawBatchesOnTheDeviceGiveTheCpuLogits) {
  TempDir dir;
  const fs::path root = dir.path / "images";
  write_image_folder(root, {"a", "b"}, 7, 20, 60);
  ImageFolderOptions o;
  o.height = o.width = 32;
  o.augment.normalize = Normalization::preset("imagenet");
  o.augment.rotation_range = 20;
  o.augment.zoom_range = 0.2f;
  o.augment.horizontal_flip = true;
  ImageFolderSource floats(root.string(), o), raw(root.string(), o);
  raw.set_raw_batches(true);

  const ModelSpec spec{.architecture = "vgg11", .sample_shape = Shape{32, 32, 3}, .num_classes = 2, .seed = 3,
                       .head = "flatten,dense:16,relu,dense:N", .width_divisor = 8};
  HostPool host;
  cuda::DevicePool dev;
  auto cpu_model = build_model(spec, host), gpu_model = build_model(spec, dev);
  ExecutorOptions eo;
  eo.batch = 4;
  eo.training = false;
  Executor cpu(*cpu_model, eo);
  eo.raw_input = raw.raw_normalization();
  Executor gpu(*gpu_model, eo);
  floats.start_epoch(5, 1, true, true);
  raw.start_epoch(5, 1, true, true);
  int batches = 0;
  while (const int64_t n = floats.next_batch(eo.batch, cpu.input(), cpu.labels())) {
    SCOPED_TRACE("batch " + std::to_string(batches));
    ASSERT_EQ(raw.next_raw_batch(eo.batch, gpu.raw_images(), gpu.raw_warps(), gpu.labels()), n);
    cpu.forward(n, false, 0);
    gpu.forward(n, false, 0);
    const size_t count = size_t(cpu.output_shape(n).numel());
    const std::vector<float> c(cpu.output(), cpu.output() + count), g(gpu.output(), gpu.output() + count);
    EXPECT_LT(relative_error(g, c), 1e-4);
    ++batches;
  }
  EXPECT_EQ(batches, 4);  // 14 images in batches of 4
}

}  // namespace
}  // namespace graft::testing
