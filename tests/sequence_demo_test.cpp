// The sequence transfer demo (tools/sequence-demo.sh), small and fast through the library: an
// LSTM reading Fashion-MNIST row by row, pretrained on a slice of classes 0-4, frozen, with a
// fresh head trained on K=10 sequences per class of classes 5-9, must beat the same network
// trained from scratch on those 50, on 1,000 test images of classes 5-9. Seeds are fresh
// each run (printed) and the margin is averaged over draws, as tests/transfer_test.cpp does.
#include <filesystem>
#include <sstream>

#include "layers/zoo.h"
#include "runtime/dataset.h"
#include "runtime/evaluation.h"
#include "runtime/trainer.h"
#include "tests/testing.h"

namespace graft {
namespace {

constexpr const char* kModel = "lstm:32,mean,dense:5";  // the demo's, narrower
constexpr double kMarginPoints = 1.0;                     // see the comment at the assertion
constexpr uint64_t kTrials = 3;

// DISABLED: the claim is false for this task, in PyTorch and in graft (docs/recipes.md
// "Sequence transfer": over five seeds with the demo's flatten readout the frozen pretrained
// LSTM scores 83.2% at K=10 in graft, 81.0% in PyTorch, against scratch's 85.4% and 84.7%, and
// below a frozen random LSTM; with last or mean pooling it loses by 9-15 points). Kept compiled
// and runnable with --gtest_also_run_disabled_tests, not in the suite, until a sequence task
// where transfer wins is measured.
TEST(SequenceDemo, DISABLED_FrozenPretrainedLstmBeatsScratchAtK10) {
  if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  const uint64_t seed = testing::test_seed() % 100000;
  const Dataset train_all = load_fashion_mnist(kFashionMnistDir, true);
  const Dataset test_all = load_fashion_mnist(kFashionMnistDir, false);
  InMemorySource source(few_shot(select_classes(train_all, {0, 1, 2, 3, 4}), 1000, seed));  // 5,000 sequences
  InMemorySource target_test(few_shot(select_classes(test_all, {5, 6, 7, 8, 9}), 200, seed + 7));
  std::ostringstream log;

  HostPool pool;
  const Shape rows{28, 28, 1};  // 28 steps of 28 features
  auto base = build_model(ModelSpec{.architecture = kModel, .sample_shape = rows, .num_classes = 5, .seed = seed}, pool);
  TrainOptions pre;
  pre.epochs = 1;
  pre.batch = 64;
  pre.seed = seed;
  try {
    train(*base, source, nullptr, pre, log);
  } catch (const Error& e) {
    // Until the CPU recurrent kernels land (issue 17, part 1), say so instead of failing.
    if (std::string(e.what()).find("not implemented on the CPU yet") != std::string::npos)
      GTEST_SKIP() << "the CPU LSTM is not there yet: " << e.what();
    throw;
  }

  double scratch_sum = 0, transfer_sum = 0;
  for (uint64_t trial = 0; trial < kTrials; ++trial) {
    InMemorySource target(few_shot(select_classes(train_all, {5, 6, 7, 8, 9}), 10, seed + 1 + 100 * trial));
    TrainOptions fine;
    fine.epochs = 30;
    fine.batch = 32;
    fine.optimizer.lr = 0.01f;  // the demo's few-shot rate: 60 steps must move a fresh head
    fine.seed = seed + 2 + 100 * trial;
    const ModelSpec spec{.architecture = kModel, .sample_shape = rows, .num_classes = 5, .seed = seed + 3 + 100 * trial};

    auto scratch = build_model(spec, pool);
    train(*scratch, target, nullptr, fine, log);
    const double scratch_acc = 100 * evaluate(*scratch, target_test, 256, LossKind::CrossEntropy).accuracy();

    auto transfer = build_model(spec, pool);
    for (size_t p = 0; p < base->params().size(); ++p) {
      if (base->params()[p].name.rfind("lstm", 0) != 0) continue;
      std::copy(base->param_data(p), base->param_data(p) + base->params()[p].spec.shape.numel(),
                transfer->param_data(p));
    }
    fine.frozen = resolve_freeze_patterns(*transfer, {"lstm"});
    train(*transfer, target, nullptr, fine, log);
    const double transfer_acc = 100 * evaluate(*transfer, target_test, 256, LossKind::CrossEntropy).accuracy();

    std::printf("[graft] K=10 LSTM test accuracy, draw %llu: scratch %.2f%%, frozen pretrained LSTM %.2f%% (seed %llu)\n",
                static_cast<unsigned long long>(trial), scratch_acc, transfer_acc, static_cast<unsigned long long>(seed));
    scratch_sum += scratch_acc;
    transfer_sum += transfer_acc;
  }
  // The margin is PyTorch's with the same recipe (tools/sequence_demo_torch.py, docs/recipes.md
  // "Sequence transfer"); it has not been measured on graft's LSTM, which could not run on the
  // CPU when this test was written: measure it over many seeds when it can, and restate it.
  EXPECT_GT(transfer_sum / kTrials, scratch_sum / kTrials + kMarginPoints)
      << "mean over " << kTrials << " draws (seed " << seed << "; rerun with GRAFT_TEST_SEED=" << testing::test_seed() << ")";
}

}  // namespace
}  // namespace graft
