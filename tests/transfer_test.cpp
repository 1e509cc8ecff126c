// Transfer learning on Fashion-MNIST, end to end through the library: a base pretrained on
// classes 0-4, frozen, with a fresh head trained on K=10 images per class of classes 5-9,
// must beat the same network trained from scratch on those 50 images, on the 5,000 test
// images of classes 5-9. Seeds are fresh each run (printed), so the margin is a property
// of transfer, not of one lucky seed.
#include <filesystem>
#include <sstream>

#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "runtime/dataset.h"
#include "runtime/trainer.h"
#include "tests/testing.h"

namespace graft {
namespace {

// Stated margin: transfer must win by at least this many percentage points. Measured over
// seeds (docs/architecture.md, Transfer test), transfer won by 3.4 to 5 points.
constexpr double kMarginPoints = 2.0;

TEST(Transfer, FrozenPretrainedBaseBeatsScratchAtK10) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  const uint64_t seed = testing::test_seed() % 100000;
  const Dataset train_all = load_fashion_mnist(kFashionMnistDir, true);
  const Dataset test_all = load_fashion_mnist(kFashionMnistDir, false);
  InMemorySource source(select_classes(train_all, {0, 1, 2, 3, 4}));  // 30,000 images, one epoch
  InMemorySource target(few_shot(select_classes(train_all, {5, 6, 7, 8, 9}), 10, seed + 1));
  InMemorySource target_test(select_classes(test_all, {5, 6, 7, 8, 9}));
  std::ostringstream log;

  HostPool pool;
  auto base = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{28, 28, 1}, .num_classes = 5, .seed = seed}, pool);
  TrainOptions pre;
  pre.epochs = 1;
  pre.batch = 32;
  pre.seed = seed;
  train(*base, source, nullptr, pre, log);

  TrainOptions fine;
  fine.epochs = 30;
  fine.batch = 32;
  fine.seed = seed + 2;

  auto scratch = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{28, 28, 1}, .num_classes = 5, .seed = seed + 3}, pool);
  train(*scratch, target, nullptr, fine, log);
  const double scratch_acc = evaluate(*scratch, target_test, 256, LossKind::CrossEntropy).accuracy();

  auto transfer = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{28, 28, 1}, .num_classes = 5, .seed = seed + 3}, pool);
  for (size_t p = 0; p < base->params().size(); ++p) {
    if (base->params()[p].name.rfind("conv", 0) != 0) continue;
    std::copy(base->param_data(p), base->param_data(p) + base->params()[p].spec.shape.numel(), transfer->param_data(p));
  }
  fine.frozen = resolve_freeze_patterns(*transfer, {"conv*"});
  train(*transfer, target, nullptr, fine, log);
  const double transfer_acc = evaluate(*transfer, target_test, 256, LossKind::CrossEntropy).accuracy();

  std::printf("[graft] K=10 test accuracy: scratch %.2f%%, frozen pretrained base %.2f%% (seed %llu)\n",
              100 * scratch_acc, 100 * transfer_acc, static_cast<unsigned long long>(seed));
  EXPECT_GT(100 * transfer_acc, 100 * scratch_acc + kMarginPoints);
}

}  // namespace
}  // namespace graft
