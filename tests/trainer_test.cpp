// The training loop from the outside: resume (at an epoch boundary and after an interrupt
// mid-epoch) continues bit for bit, gradient accumulation equals the larger batch,
// discriminative learning rates, early stopping, and the NaN/Inf guard.
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "layers/zoo.h"
#include "base/error.h"
#include "runtime/interrupt.h"
#include "runtime/trainer.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::params;
using testing::random_dataset;
using testing::TempDir;

std::unique_ptr<Model> model(MemoryPool& pool, uint64_t seed, int classes = 3) {
  return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = classes, .seed = seed}, pool);
}

TrainOptions base_options(int epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 8;
  o.seed = testing::test_seed() % 1000;
  o.optimizer.kind = "adamw";
  o.optimizer.weight_decay = 0.01f;
  o.schedule.kind = "cosine";
  o.schedule.warmup_steps = 2;
  return o;
}

// A schedule that depends only on the step (cosine's length depends on --epochs, so a run
// of 2 epochs extended to 4 is a different run from one of 4).
TrainOptions stepwise(int epochs) {
  TrainOptions o = base_options(epochs);
  o.schedule.kind = "step";
  o.schedule.step_size = 5;
  o.schedule.gamma = 0.5f;
  return o;
}

TEST(Trainer, ResumeAtAnEpochBoundaryIsBitIdentical) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(44, 3));
  std::ostringstream log;
  const uint64_t init = testing::test_seed();

  auto straight = model(pool, init);
  train(*straight, data, nullptr, stepwise(4), log);

  auto first = model(pool, init);
  TrainOptions half = stepwise(2);
  half.save_path = dir.file("half.safetensors");
  train(*first, data, nullptr, half, log);

  auto resumed = model(pool, init + 99);  // its own parameters are replaced by the checkpoint's
  TrainOptions rest = stepwise(4);
  rest.resume_path = dir.file("half.safetensors");
  const auto reports = train(*resumed, data, nullptr, rest, log);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports.front().epoch, 3);
  EXPECT_TRUE(params(*straight) == params(*resumed)) << "resumed parameters differ from an uninterrupted run";
}

// Raises SIGTERM after `after` batches, as a user's kill would, mid-epoch.
class InterruptingSource final : public BatchSource {
 public:
  InterruptingSource(BatchSource& inner, int64_t after) : inner_(inner), after_(after) {}
  int64_t size() const override { return inner_.size(); }
  Shape sample_shape() const override { return inner_.sample_shape(); }
  const std::vector<std::string>& class_names() const override { return inner_.class_names(); }
  std::string origin() const override { return inner_.origin(); }
  std::vector<int32_t> labels() const override { return inner_.labels(); }
  void start_epoch(uint64_t seed, int64_t epoch, bool shuffle, bool augment, int64_t skip) override {
    inner_.start_epoch(seed, epoch, shuffle, augment, skip);
  }
  int64_t position() const override { return inner_.position(); }
  int64_t next_batch(int64_t max, float* images, int32_t* labels) override {
    if (++served_ == after_) std::raise(SIGTERM);
    return inner_.next_batch(max, images, labels);
  }

 private:
  BatchSource& inner_;
  int64_t after_;
  int64_t served_ = 0;
};

// --restore-best: the parameters at the end are those of the best epoch (the same run
// stopped there has them bit for bit), and the line says the best value in full.
TEST(Trainer, RestoreBestPutsBackTheBestEpochAndNamesItsValue) {
  HostPool pool;
  InMemorySource data(random_dataset(40, 3)), val(random_dataset(24, 3));
  std::ostringstream log;
  const uint64_t init = testing::test_seed();
  TrainOptions o = stepwise(6);
  o.optimizer.lr = 0.03f;  // big steps: the validation loss wanders, so the best is often not the last
  o.monitor = "val_loss";
  o.restore_best = true;
  auto full = model(pool, init);
  const auto reports = train(*full, data, &val, o, log);
  ASSERT_EQ(reports.size(), 6u);
  size_t best = 0;
  for (size_t i = 1; i < reports.size(); ++i)
    if (reports[i].validation->loss() < reports[best].validation->loss()) best = i;
  std::ostringstream value;
  value << reports[best].validation->loss();
  EXPECT_NE(log.str().find("restored the parameters of the best epoch (val_loss " + value.str() + ")"), std::string::npos)
      << log.str();

  TrainOptions upto = o;
  upto.epochs = int(best) + 1;
  upto.restore_best = false;
  auto stopped = model(pool, init);
  train(*stopped, data, &val, upto, log);
  EXPECT_TRUE(params(*full) == params(*stopped)) << "the restored parameters are not epoch " << best + 1 << "'s";
}

TEST(Trainer, InterruptMidEpochSavesAndResumesBitIdentically) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(52, 3));  // 7 batches of 8 per epoch
  std::ostringstream log;
  const uint64_t init = testing::test_seed();
  auto straight = model(pool, init);
  train(*straight, data, nullptr, base_options(3), log);

  install_interrupt_handlers();
  clear_interrupt();
  auto interrupted = model(pool, init);
  InterruptingSource stopping(data, /*after=*/testing::random_int(2, 17));
  TrainOptions o = base_options(3);
  o.save_path = dir.file("run.safetensors");
  try {
    train(*interrupted, stopping, nullptr, o, log);
    FAIL() << "expected an interrupt";
  } catch (const Interrupted& i) {
    EXPECT_EQ(i.exit_code(), 143);
  }
  clear_interrupt();
  EXPECT_NE(log.str().find("--resume " + o.save_path), std::string::npos) << log.str();

  auto resumed = model(pool, init + 7);
  o.resume_path = o.save_path;
  train(*resumed, data, nullptr, o, log);
  EXPECT_TRUE(params(*straight) == params(*resumed)) << "an interrupted and resumed run differs";
}

TEST(Trainer, ResumeWithDifferentSettingsIsAnError) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(20, 3));
  std::ostringstream log;
  auto m = model(pool, 1);
  TrainOptions o = base_options(1);
  o.save_path = dir.file("a.safetensors");
  train(*m, data, nullptr, o, log);
  TrainOptions other = base_options(2);
  other.batch = 4;
  other.resume_path = o.save_path;
  try {
    train(*m, data, nullptr, other, log);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch 8"), std::string::npos) << e.what();
  }
}

TEST(Trainer, GradientAccumulationEqualsTheLargerBatch) {
  HostPool pool;
  InMemorySource data(random_dataset(32, 3));
  std::ostringstream log;
  const uint64_t init = testing::test_seed();
  TrainOptions big;
  big.epochs = 2;
  big.batch = 16;
  big.seed = 3;
  big.optimizer.kind = "sgd";
  big.optimizer.lr = 0.05f;
  big.optimizer.momentum = 0.9f;
  TrainOptions small = big;
  small.batch = 8;
  small.grad_accumulation = 2;
  auto a = model(pool, init), b = model(pool, init);
  train(*a, data, nullptr, big, log);
  train(*b, data, nullptr, small, log);
  const auto pa = params(*a), pb = params(*b);
  EXPECT_LT(testing::relative_error(pb, pa), 1e-5);
  EXPECT_FALSE(pa == params(*model(pool, init))) << "training must have changed something";
}

TEST(Trainer, LrMultZeroLeavesLayersUntouched) {
  HostPool pool;
  InMemorySource data(random_dataset(24, 3));
  std::ostringstream log;
  auto m = model(pool, testing::test_seed());
  const auto before = params(*m);
  TrainOptions o = base_options(1);
  o.optimizer.kind = "sgd";
  o.optimizer.weight_decay = 0;
  o.lr_mult = {parse_lr_mult("conv*=0"), parse_lr_mult("fc2=0.5")};
  train(*m, data, nullptr, o, log);
  for (size_t p = 0; p < m->params().size(); ++p) {
    const auto& info = m->params()[p];
    const bool same = std::memcmp(m->param_data(p), before.data() + info.offset,
                                  size_t(info.spec.shape.numel()) * sizeof(float)) == 0;
    EXPECT_EQ(same, info.name.rfind("conv", 0) == 0) << info.name;
  }
  EXPECT_THROW(parse_lr_mult("conv*"), Error);
  EXPECT_THROW(parse_lr_mult("conv*=fast"), Error);
  o.lr_mult = {parse_lr_mult("features.*=0.1")};
  EXPECT_THROW(train(*m, data, nullptr, o, log), Error);
}

TEST(Trainer, EarlyStoppingAndRestoreBest) {
  HostPool pool;
  InMemorySource data(random_dataset(24, 3));
  std::ostringstream log;
  auto m = model(pool, testing::test_seed());
  TrainOptions o = base_options(10);
  o.lr_mult = {parse_lr_mult("*=0")};  // nothing moves: accuracy (an exact count) can never improve
  o.monitor = "accuracy";
  o.patience = 2;
  o.optimizer.weight_decay = 0;
  const auto reports = train(*m, data, nullptr, o, log);
  EXPECT_EQ(reports.size(), 3u) << log.str();
  EXPECT_NE(log.str().find("early stopping"), std::string::npos);
}

TEST(Trainer, NonFiniteLossNamesTheLayerAndSkipsWhenAllowed) {
  HostPool pool;
  InMemorySource data(random_dataset(40, 3));
  std::ostringstream log;
  auto m = model(pool, testing::test_seed());
  TrainOptions o = base_options(2);
  o.optimizer.kind = "adam";
  o.optimizer.lr = 1e38f;
  o.schedule.kind = "constant";
  o.schedule.warmup_steps = 0;
  o.check_finite = true;
  o.skip_nonfinite = 2;
  try {
    train(*m, data, nullptr, o, log);
    FAIL() << "expected the NaN guard to stop the run";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("first layer whose output was not finite is conv1"), std::string::npos) << what;
    EXPECT_NE(what.find("epoch 1"), std::string::npos) << what;
  }
  size_t skips = 0;
  for (size_t at = 0; (at = log.str().find("skipping step", at)) != std::string::npos; ++at) ++skips;
  EXPECT_EQ(skips, 2u) << log.str();
}

// --sync-every N: the verdict on each step is read every N steps, yet a normal run is the
// same bit for bit, and a run that blows up stops naming the same step and batch as a
// per-step check, with the checkpoint it had untouched.
TEST(Trainer, DeferredFiniteChecksNameTheSameStep) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(40, 3));
  const uint64_t seed = testing::test_seed();
  std::vector<std::vector<float>> finals;
  for (int every : {1, 7}) {
    auto m = model(pool, seed);
    TrainOptions o = base_options(2);
    o.sync_every = every;
    std::ostringstream log;
    train(*m, data, nullptr, o, log);
    finals.push_back(testing::params(*m));
  }
  EXPECT_TRUE(finals[0] == finals[1]);

  std::vector<std::string> errors;
  for (int every : {1, 5}) {
    auto m = model(pool, seed);
    TrainOptions o = base_options(1);
    o.save_path = dir.file("last.safetensors");
    std::ostringstream log;
    train(*m, data, nullptr, o, log);  // a good checkpoint first
    const auto before = testing::read_bytes(o.save_path);
    o.epochs = 3;
    o.optimizer.kind = "adam";
    o.optimizer.lr = 1e38f;
    o.schedule.kind = "constant";
    o.schedule.warmup_steps = 0;
    o.sync_every = every;
    auto fresh = model(pool, seed);
    errors.push_back(testing::error_of([&] { train(*fresh, data, nullptr, o, log); }));
    EXPECT_TRUE(testing::read_bytes(o.save_path) == before) << "the last good checkpoint changed";
  }
  ASSERT_NE(errors[0].find(" at epoch 1, step "), std::string::npos) << errors[0];
  // The per-step check may say NaN where the deferred one says non-finite; the rest agrees.
  auto where = [](const std::string& e) { return e.substr(e.find(" at epoch ")); };
  EXPECT_EQ(where(errors[1]), where(errors[0]));
  EXPECT_NE(errors[1].find("The last good checkpoint"), std::string::npos) << errors[1];
}

// Step graphs read dropout's per-step streams from memory the executor writes before each
// step (on the CPU too, where no graph is recorded): the same masks, the same run.
TEST(Trainer, DropoutStreamsFromMemoryGiveTheSameRun) {
  HostPool pool;
  InMemorySource data(random_dataset(30, 3));
  const uint64_t seed = testing::test_seed();
  std::vector<std::vector<float>> finals;
  for (bool graphs : {false, true}) {
    auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = 3,
                                   .seed = seed, .head = "flatten,dense:16,relu,dropout:0.5,dense:N"},
                         pool);
    TrainOptions o = base_options(2);
    o.step_graphs = graphs;
    std::ostringstream log;
    train(*m, data, nullptr, o, log);
    finals.push_back(testing::params(*m));
  }
  EXPECT_TRUE(finals[0] == finals[1]);
}

TEST(Trainer, ClassWeightsAutoFileAndErrors) {
  TempDir dir;
  Dataset d = random_dataset(12, 3);
  for (size_t i = 0; i < d.labels.size(); ++i) d.labels[i] = i < 6 ? 0 : i < 9 ? 1 : 2;  // 6, 3, 3
  InMemorySource data(d);
  const auto w = resolve_class_weights("auto", data);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_FLOAT_EQ(w[0], 12.0f / (3 * 6));
  EXPECT_FLOAT_EQ(w[1], 12.0f / (3 * 3));
  std::ofstream(dir.file("list.json")) << "[1, 2.5, 0]";
  EXPECT_EQ(resolve_class_weights(dir.file("list.json"), data), (std::vector<float>{1.0f, 2.5f, 0.0f}));
  std::ofstream(dir.file("map.json")) << R"({"c2": 3, "c0": 1, "c1": 0.5})";
  EXPECT_EQ(resolve_class_weights(dir.file("map.json"), data), (std::vector<float>{1.0f, 0.5f, 3.0f}));
  std::ofstream(dir.file("bad.json")) << R"({"c0": 1, "cat": 2})";
  try {
    resolve_class_weights(dir.file("bad.json"), data);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no class named 'cat'"), std::string::npos) << e.what();
  }
  std::ofstream(dir.file("short.json")) << "[1, 2]";
  EXPECT_THROW(resolve_class_weights(dir.file("short.json"), data), Error);
}

// Uniform class weights are the unweighted loss; other weights change the gradient.
TEST(Trainer, ClassWeightedLossThroughTheExecutor) {
  HostPool pool;
  auto m = model(pool, testing::test_seed());
  auto gradients = [&](std::vector<float> weights) {
    ExecutorOptions o;
    o.batch = 5;
    o.class_weights = std::move(weights);
    o.label_smoothing = 0.1f;
    Executor ex(*m, o);
    std::mt19937 gen(7);
    for (int i = 0; i < 5 * 64; ++i) ex.input()[i] = float(gen() % 1000) / 1000.0f;
    for (int i = 0; i < 5; ++i) ex.labels()[i] = i % 3;
    ex.forward(5, true, 0);
    ex.backward(5);
    return std::make_pair(std::vector<float>(ex.gradients(), ex.gradients() + ex.trainable_count()), ex.last_batch_loss());
  };
  const auto plain = gradients({});
  const auto uniform = gradients({2.0f, 2.0f, 2.0f});
  const auto skewed = gradients({0.2f, 1.0f, 5.0f});
  EXPECT_LT(testing::relative_error(uniform.first, plain.first), 1e-5);
  EXPECT_NEAR(uniform.second, plain.second, 1e-6 * std::abs(plain.second));
  EXPECT_GT(testing::relative_error(skewed.first, plain.first), 1e-3);
}

}  // namespace
}  // namespace graft
