// Labels outside the model's classes: refused on the host by name before any kernel indexes
// a row of logits with them (the kernels' own guard is tested in loss_test.cpp).
#include <cmath>
#include <string>

#include "layers/zoo.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "tests/testing.h"

namespace graft {
namespace {

struct Batch {
  std::unique_ptr<Model> model;
  std::unique_ptr<Executor> ex;
};

// A small CNN with `classes` outputs and a batch of valid random labels.
Batch small_batch(HostPool& pool, int classes, int64_t n, LossKind loss) {
  Batch b;
  b.model = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = classes,
                                  .seed = testing::test_seed()},
                        pool);
  ExecutorOptions o;
  o.batch = n;
  o.loss = loss;
  b.ex = std::make_unique<Executor>(*b.model, o);
  const auto x = testing::random_floats(size_t(n * 64), 0.0f, 1.0f);
  std::copy(x.begin(), x.end(), b.ex->input());
  for (int64_t i = 0; i < n; ++i) b.ex->labels()[i] = testing::random_int(0, classes - 1);
  return b;
}

TEST(LabelCheck, ALabelOutsideTheClassesIsRefusedByNameInTrainingAndEvaluation) {
  for (LossKind loss : {LossKind::CrossEntropy, LossKind::MSE}) {
    HostPool pool;
    const int classes = testing::random_int(2, 9);
    const int64_t n = testing::random_int(2, 8);
    Batch b = small_batch(pool, classes, n, loss);
    b.ex->forward(n, true, 0);
    b.ex->backward(n);  // valid labels: no error
    EXPECT_TRUE(std::isfinite(b.ex->last_batch_loss()));

    const int64_t row = testing::random_int(0, int(n) - 1);
    const int bad = testing::random_int(0, 1) ? classes + testing::random_int(0, 5) : -1 - testing::random_int(0, 5);
    b.ex->labels()[row] = bad;
    const std::vector<std::string> parts = {"label " + std::to_string(bad), "example " + std::to_string(row),
                                            std::to_string(classes) + " classes"};
    b.ex->forward(n, true, 1);
    testing::expect_error([&] { b.ex->backward(n); }, parts);
    b.ex->forward(n, false, 1);
    testing::expect_error([&] { b.ex->accumulate_metrics(n); }, parts);
  }
}

}  // namespace
}  // namespace graft
