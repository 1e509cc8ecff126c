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

// Stated margin: averaged over kTrials few-shot draws, transfer must win by more than this
// many percentage points. Measured on this machine (2026-12-01): over 102 draws (51 seeds)
// the per-draw margin had mean 3.9, s.d. 1.7, range -0.8 to 11.3, so about one draw in fifty
// loses and no single draw is asserted. A frozen *random* base (the copy skipped, 12 draws)
// had mean -1.3. Resampling those draws six at a time, the mean misses 1.5 points about 6
// times in 10,000 with transfer, and reaches it about once in 100 without.
constexpr double kMarginPoints = 1.5;
constexpr uint64_t kTrials = 6;

TEST(Transfer, FrozenPretrainedBaseBeatsScratchAtK10) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  const uint64_t seed = testing::test_seed() % 100000;
  const Dataset train_all = load_fashion_mnist(kFashionMnistDir, true);
  const Dataset test_all = load_fashion_mnist(kFashionMnistDir, false);
  InMemorySource source(select_classes(train_all, {0, 1, 2, 3, 4}));  // 30,000 images, one epoch
  InMemorySource target_test(select_classes(test_all, {5, 6, 7, 8, 9}));
  std::ostringstream log;

  HostPool pool;
  auto base = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{28, 28, 1}, .num_classes = 5, .seed = seed}, pool);
  TrainOptions pre;
  pre.epochs = 1;
  pre.batch = 32;
  pre.seed = seed;
  train(*base, source, nullptr, pre, log);

  // Independent few-shot draws, each trained from scratch and on the frozen base with the
  // same fine-tuning recipe and the same head initialisation: transfer must win on average
  // by the margin.
  double scratch_sum = 0, transfer_sum = 0;
  for (uint64_t trial = 0; trial < kTrials; ++trial) {
    InMemorySource target(few_shot(select_classes(train_all, {5, 6, 7, 8, 9}), 10, seed + 1 + 100 * trial));
    TrainOptions fine;
    fine.epochs = 30;
    fine.batch = 32;
    fine.seed = seed + 2 + 100 * trial;
    const ModelSpec spec{.architecture = "fmnist_cnn", .sample_shape = Shape{28, 28, 1}, .num_classes = 5,
                         .seed = seed + 3 + 100 * trial};

    auto scratch = build_model(spec, pool);
    train(*scratch, target, nullptr, fine, log);
    const double scratch_acc = 100 * evaluate(*scratch, target_test, 256, LossKind::CrossEntropy).accuracy();

    auto transfer = build_model(spec, pool);
    for (size_t p = 0; p < base->params().size(); ++p) {
      if (base->params()[p].name.rfind("conv", 0) != 0) continue;
      std::copy(base->param_data(p), base->param_data(p) + base->params()[p].spec.shape.numel(),
                transfer->param_data(p));
    }
    fine.frozen = resolve_freeze_patterns(*transfer, {"conv*"});
    train(*transfer, target, nullptr, fine, log);
    const double transfer_acc = 100 * evaluate(*transfer, target_test, 256, LossKind::CrossEntropy).accuracy();

    std::printf("[graft] K=10 test accuracy, draw %llu: scratch %.2f%%, frozen pretrained base %.2f%% (seed %llu)\n",
                static_cast<unsigned long long>(trial), scratch_acc, transfer_acc, static_cast<unsigned long long>(seed));
    scratch_sum += scratch_acc;
    transfer_sum += transfer_acc;
  }
  EXPECT_GT(transfer_sum / kTrials, scratch_sum / kTrials + kMarginPoints)
      << "mean over " << kTrials << " draws (seed " << seed << "; rerun with GRAFT_TEST_SEED=" << testing::test_seed() << ")";
}

}  // namespace
}  // namespace graft
