// Feature caching from the outside: where the cut goes and why it cannot (dropout, batch
// norm in train mode, augmentation, nothing frozen, a residual across the cut), the cache
// replaying its source exactly, training with it equal to training without, resume, skipped
// images, and that cached epochs never run the frozen prefix again. Ends with the CLI.
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "layers/add.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/simple_layers.h"
#include "layers/zoo.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/feature_cache.h"
#include "runtime/image_folder.h"
#include "runtime/interrupt.h"
#include "runtime/trainer.h"
#include "tests/graft_program.h"
#include "tests/image_writing.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::params;
using testing::random_dataset;
using testing::error_of;
using testing::has;
using testing::TempDir;

// fmnist_cnn on 8x8 inputs with a head that has dropout (its masks must match cached or not).
std::unique_ptr<Model> cnn(MemoryPool& pool, uint64_t seed, int classes = 3, Shape sample = Shape{8, 8, 1}) {
  return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = sample, .num_classes = classes,
                               .seed = seed, .head = "flatten,dense:16,relu,dropout:0.5,dense:N"},
                     pool);
}

// Identity that counts its forward passes and, when asked, raises SIGTERM at its k-th
// forward in training (a user's kill in the middle of an epoch, wherever the batches come from).
class Probe final : public Layer {
 public:
  Probe(std::string name, int64_t* forwards, int64_t raise_at = -1)
      : Layer(std::move(name)), forwards_(forwards), raise_at_(raise_at) {}
  std::string kind() const override { return "probe"; }
  std::string describe() const override { return "probe"; }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  bool backward_reads_inputs() const override { return false; }
  void forward(const ForwardArgs& a) override {
    std::memcpy(a.output, a.inputs[0], size_t(a.output_shape.numel()) * sizeof(float));
    ++*forwards_;
    if (a.ctx->training && ++training_forwards_ == raise_at_) std::raise(SIGTERM);
  }
  void backward(const BackwardArgs& a) override {
    if (a.dinputs[0]) std::memcpy(a.dinputs[0], a.doutput, size_t(a.output_shape.numel()) * sizeof(float));
  }

 private:
  int64_t* forwards_;
  int64_t raise_at_;
  int64_t training_forwards_ = 0;
};

struct Probes {
  int64_t prefix = 0, head = 0;
};

// conv1 -> relu1 -> pool1 -> probe.prefix -> flatten -> fc1 -> relu2 -> probe.head -> fc2;
// frozen conv1: the cut is at flatten.
std::unique_ptr<Model> probed(MemoryPool& pool, uint64_t seed, Probes& p, int64_t raise_at = -1, int classes = 3) {
  auto m = std::make_unique<Model>("probed", Shape{8, 8, 1}, pool);
  m->add(std::make_unique<Conv2d>("conv1", 1, Conv2dOptions{4, 3, 1, 1, true}));
  m->add(std::make_unique<ReLU>("relu1"));
  m->add(std::make_unique<Pool2d>("pool1", PoolKind::Max, 2, 2, 0));
  m->add(std::make_unique<Probe>("probe.prefix", &p.prefix));
  m->add(std::make_unique<Flatten>("flatten"));
  m->add(std::make_unique<Dense>("fc1", 64, 16));
  m->add(std::make_unique<ReLU>("relu2"));
  m->add(std::make_unique<Probe>("probe.head", &p.head, raise_at));
  m->add(std::make_unique<Dense>("fc2", 16, classes));
  m->finalize(seed);
  return m;
}

TrainOptions options(int epochs, FeatureCacheMode cache) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 8;
  o.seed = testing::test_seed() % 1000;
  o.optimizer.kind = "adamw";
  o.optimizer.weight_decay = 0.01f;
  o.schedule.kind = "step";
  o.schedule.step_size = 5;
  o.schedule.gamma = 0.5f;
  o.cache_features = cache;
  return o;
}


// --- the cut ---

TEST(FeatureCache, CutsAfterTheFrozenBaseOfZooModels) {
  HostPool pool;
  auto fm = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = 3}, pool);
  FeatureCut c = find_feature_cut(*fm, resolve_freeze_patterns(*fm, {"conv*"}));
  ASSERT_GE(c.node, 0) << c.why_not;
  EXPECT_EQ(fm->nodes()[size_t(c.node)].name, "flatten");
  EXPECT_EQ(c.note, "");

  ModelSpec vgg{.architecture = "vgg11", .sample_shape = Shape{32, 32, 3}, .num_classes = 4, .width_divisor = 8,
                .classifier_width = 32};
  auto v = build_model(vgg, pool);
  c = find_feature_cut(*v, resolve_freeze_patterns(*v, {"features.*"}));
  ASSERT_GE(c.node, 0) << c.why_not;
  EXPECT_EQ(v->nodes()[size_t(c.node)].name, "flatten");
  // Freezing the classifier's first Linear too: the cut stops before its dropout.
  c = find_feature_cut(*v, resolve_freeze_patterns(*v, {"features.*", "classifier.0"}));
  ASSERT_GE(c.node, 0) << c.why_not;
  EXPECT_EQ(v->nodes()[size_t(c.node)].name, "classifier.1");
  EXPECT_TRUE(has(c.note, "'classifier.2' (dropout, p 0.5)")) << c.note;

  // ResNet: one tensor crosses only at a block's output.
  ModelSpec rs{.architecture = "resnet18", .sample_shape = Shape{32, 32, 3}, .num_classes = 4, .width_divisor = 16};
  auto r = build_model(rs, pool);
  const auto frozen = resolve_freeze_patterns(*r, {"conv1", "bn1", "layer1.*", "layer2.*", "layer3.*", "layer4.0.conv1"});
  apply_batchnorm_policy(*r, frozen, {});
  c = find_feature_cut(*r, frozen);
  ASSERT_GE(c.node, 0) << c.why_not;
  EXPECT_EQ(r->nodes()[size_t(c.node)].name, "layer3.1.relu");
  EXPECT_TRUE(has(c.note, "'layer4.0.bn1' is trainable") || has(c.note, "reads 'layer3.1.relu'")) << c.note;
  // A frozen batch norm left in train mode is random: the cut moves before its block.
  apply_batchnorm_policy(*r, frozen, {{"layer3.1.bn2", BnPolicy::Train}});
  c = find_feature_cut(*r, frozen);
  ASSERT_GE(c.node, 0) << c.why_not;
  EXPECT_EQ(r->nodes()[size_t(c.node)].name, "layer3.0.relu");
  EXPECT_TRUE(has(c.note, "'layer3.1.bn2' (batch norm, policy train)")) << c.note;
}

TEST(FeatureCache, InvalidCutsSayWhy) {
  HostPool pool;
  auto fm = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = 3}, pool);
  FeatureCut c = find_feature_cut(*fm, {});
  EXPECT_EQ(c.node, -1);
  EXPECT_TRUE(has(c.why_not, "no layer is frozen")) << c.why_not;
  c = find_feature_cut(*fm, resolve_freeze_patterns(*fm, {"fc1"}));  // a trainable layer first
  EXPECT_EQ(c.node, -1);
  EXPECT_TRUE(has(c.why_not, "the first layer, 'conv1' is trainable")) << c.why_not;

  auto built = [&](auto&& add) {
    auto m = std::make_unique<Model>("custom", Shape{4, 4, 2}, pool);
    add(*m);
    m->finalize(testing::test_seed());
    return m;
  };
  auto frozen_where = [](const Model& m, const std::vector<std::string>& names) {
    std::vector<bool> f(size_t(m.num_nodes()), false);
    for (const auto& n : names) f[size_t(m.find_node(n))] = true;
    return f;
  };
  auto top = [](Model& m) {
    m.add(std::make_unique<Flatten>("flatten"));
    m.add(std::make_unique<Dense>("fc", 32, 3));
  };
  // Dropout first: random in training, nothing deterministic to cache.
  auto drop_first = built([&](Model& m) {
    m.add(std::make_unique<Dropout>("drop", 0.5f));
    m.add(std::make_unique<Conv2d>("conv", 2, Conv2dOptions{2, 3, 1, 1, true}));
    top(m);
  });
  c = find_feature_cut(*drop_first, frozen_where(*drop_first, {"conv"}));
  EXPECT_EQ(c.node, -1);
  EXPECT_TRUE(has(c.why_not, "'drop' (dropout, p 0.5) is random in training")) << c.why_not;
  // Batch norm in train mode first, even frozen: batch statistics.
  auto bn_first = built([&](Model& m) {
    m.add(std::make_unique<BatchNorm2d>("bn", 2));
    m.add(std::make_unique<Conv2d>("conv", 2, Conv2dOptions{2, 3, 1, 1, true}));
    top(m);
  });
  const auto bn_frozen = frozen_where(*bn_first, {"bn", "conv"});
  apply_batchnorm_policy(*bn_first, bn_frozen, {{"bn", BnPolicy::Train}});
  c = find_feature_cut(*bn_first, bn_frozen);
  EXPECT_EQ(c.node, -1);
  EXPECT_TRUE(has(c.why_not, "'bn' (batch norm, policy train)")) << c.why_not;
  apply_batchnorm_policy(*bn_first, bn_frozen, {});  // frozen statistics: deterministic
  EXPECT_EQ(find_feature_cut(*bn_first, bn_frozen).node, bn_first->find_node("flatten"));
  // Dropout after a frozen layer: the cut stops before it; p = 0 is no randomness.
  for (float p : {0.5f, 0.0f}) {
    auto drop_mid = built([&](Model& m) {
      m.add(std::make_unique<Conv2d>("conv", 2, Conv2dOptions{2, 3, 1, 1, true}));
      m.add(std::make_unique<Dropout>("drop", p));
      top(m);
    });
    c = find_feature_cut(*drop_mid, frozen_where(*drop_mid, {"conv"}));
    EXPECT_EQ(c.node, drop_mid->find_node(p > 0 ? "conv" : "flatten")) << p << ": " << c.why_not;
  }
  // A residual from the model input across every cut: no single tensor crosses.
  auto residual_input = built([&](Model& m) {
    const int a = m.add(std::make_unique<Conv2d>("frozen_conv", 2, Conv2dOptions{2, 3, 1, 1, true}), {kModelInput});
    const int b = m.add(std::make_unique<Conv2d>("trainable_conv", 2, Conv2dOptions{2, 3, 1, 1, true}), {kModelInput});
    m.add(std::make_unique<Add>("add"), {a, b});
    top(m);
  });
  c = find_feature_cut(*residual_input, frozen_where(*residual_input, {"frozen_conv"}));
  EXPECT_EQ(c.node, -1);
  EXPECT_TRUE(has(c.why_not, "'trainable_conv' reads the model input")) << c.why_not;
  EXPECT_TRUE(has(c.why_not, "residual")) << c.why_not;
  // A residual from inside the frozen layers: the cut moves back to where it starts.
  auto residual = built([&](Model& m) {
    const int a = m.add(std::make_unique<Conv2d>("c0", 2, Conv2dOptions{2, 3, 1, 1, true}));
    m.add(std::make_unique<Conv2d>("c1", 2, Conv2dOptions{2, 3, 1, 1, true}));
    const int b = m.add(std::make_unique<Conv2d>("c2", 2, Conv2dOptions{2, 3, 1, 1, true}));
    m.add(std::make_unique<Add>("add"), {a, b});
    top(m);
  });
  c = find_feature_cut(*residual, frozen_where(*residual, {"c0", "c1"}));
  EXPECT_EQ(c.node, residual->find_node("c0")) << c.why_not;
  EXPECT_TRUE(has(c.note, "'add' reads 'c0'")) << c.note;
}

TEST(FeatureCache, AutoOnOffDecisions) {
  HostPool pool;
  auto m = cnn(pool, 1);
  const auto frozen = resolve_freeze_patterns(*m, {"conv*"});
  InMemorySource tr(random_dataset(20, 3)), val(random_dataset(7, 3));
  const size_t big = size_t(1) << 40;
  const int64_t floats = 2 * 2 * 64;  // after pool2 on 8x8

  FeatureCacheDecision d = decide_feature_cache(FeatureCacheMode::Auto, *m, frozen, false, tr, &val, big);
  EXPECT_TRUE(d.on);
  EXPECT_EQ(m->nodes()[size_t(d.cut)].name, "head.0");
  EXPECT_EQ(d.bytes, size_t(27 * floats) * sizeof(float));
  EXPECT_TRUE(has(d.line, "feature cache: on, after 'head.0'")) << d.line;
  EXPECT_TRUE(has(d.line, "27.0 KiB")) << d.line;
  EXPECT_TRUE(has(d.line, "--cache-features off")) << d.line;

  d = decide_feature_cache(FeatureCacheMode::Off, *m, frozen, false, tr, &val, big);
  EXPECT_FALSE(d.on);
  EXPECT_EQ(d.line, "");

  // Augmented data: auto falls back saying why, on is an error.
  d = decide_feature_cache(FeatureCacheMode::Auto, *m, frozen, true, tr, &val, big);
  EXPECT_FALSE(d.on);
  EXPECT_EQ(d.cut, -1);
  EXPECT_TRUE(has(d.line, "feature cache: off: the training data is augmented")) << d.line;
  std::string e = error_of([&] { decide_feature_cache(FeatureCacheMode::On, *m, frozen, true, tr, &val, big); });
  EXPECT_TRUE(has(e, "--cache-features on")) << e;
  EXPECT_TRUE(has(e, "augmented")) << e;
  EXPECT_TRUE(has(e, "Use --cache-features off")) << e;

  // No cut.
  d = decide_feature_cache(FeatureCacheMode::Auto, *m, {}, false, tr, nullptr, big);
  EXPECT_FALSE(d.on);
  EXPECT_TRUE(has(d.line, "no layer is frozen")) << d.line;
  e = error_of([&] { decide_feature_cache(FeatureCacheMode::On, *m, {}, false, tr, nullptr, big); });
  EXPECT_TRUE(has(e, "no layer is frozen") && has(e, "--cache-features off")) << e;

  // Over the budget.
  d = decide_feature_cache(FeatureCacheMode::Auto, *m, frozen, false, tr, &val, 1000);
  EXPECT_FALSE(d.on);
  EXPECT_TRUE(has(d.line, "over its budget")) << d.line;
  e = error_of([&] { decide_feature_cache(FeatureCacheMode::On, *m, frozen, false, tr, &val, 1000); });
  EXPECT_TRUE(has(e, "over its budget") && has(e, "--cache-features off")) << e;

  EXPECT_GT(default_feature_cache_budget(), size_t(1) << 20);
  EXPECT_EQ(parse_feature_cache_mode("on"), FeatureCacheMode::On);
  EXPECT_TRUE(has(error_of([] { parse_feature_cache_mode("yes"); }), "--cache-features 'yes'"));

  // train() with on where it cannot: the error, before any work.
  TrainOptions o = options(1, FeatureCacheMode::On);
  o.augment = true;
  o.frozen = frozen;
  std::ostringstream log;
  EXPECT_TRUE(has(error_of([&] { train(*m, tr, nullptr, o, log); }), "augmented"));
}

// --- the executor's partial plans ---

TEST(FeatureCache, PartialPlansComposeToTheWholeModel) {
  HostPool pool;
  Probes probes;
  auto m = probed(pool, testing::test_seed(), probes);
  const int cut = m->find_node("flatten");
  const int64_t batch = 5;
  const auto x = testing::random_floats(size_t(batch * 64), 0.0f, 1.0f);

  ExecutorOptions whole;
  whole.batch = batch;
  whole.training = false;
  whole.reference_kernels = true;
  Executor full(*m, whole);
  std::copy(x.begin(), x.end(), full.input());
  full.forward(batch, false, 0);
  const std::vector<float> expected(full.output(), full.output() + full.output_shape(batch).numel());

  ExecutorOptions front = whole;
  front.stop_after = cut;
  Executor prefix(*m, front);
  EXPECT_EQ(prefix.output_shape(batch), (Shape{batch, 64}));
  std::copy(x.begin(), x.end(), prefix.input());
  prefix.forward(batch, false, 0);

  ExecutorOptions back = whole;
  back.start_after = cut;
  Executor head(*m, back);
  EXPECT_EQ(head.input_floats(), 64);
  EXPECT_EQ(head.input_shape(batch), (Shape{batch, 64}));
  std::copy(prefix.output(), prefix.output() + batch * 64, head.input());
  head.forward(batch, false, 0);
  const std::vector<float> got(head.output(), head.output() + head.output_shape(batch).numel());
  EXPECT_TRUE(got == expected) << "prefix then head must equal the whole model, bit for bit";
  EXPECT_LT(head.plan().arena_bytes, full.plan().arena_bytes);
  for (int n = 0; n <= cut; ++n) EXPECT_FALSE(head.decisions()[size_t(n)].runs) << m->nodes()[size_t(n)].name;
  EXPECT_EQ(head.activation(cut), head.input());
  EXPECT_TRUE(has(head.describe()[0], "not run")) << head.describe()[0];

  // Training on features: the same gradients as the whole model with the prefix frozen.
  ExecutorOptions t = whole;
  t.training = true;
  t.frozen = resolve_freeze_patterns(*m, {"conv1"});
  Executor train_full(*m, t);
  t.start_after = cut;
  Executor train_head(*m, t);
  ASSERT_EQ(train_full.trainable_count(), train_head.trainable_count());
  ASSERT_EQ(train_full.trainable_segments().size(), train_head.trainable_segments().size());
  std::copy(x.begin(), x.end(), train_full.input());
  std::copy(prefix.output(), prefix.output() + batch * 64, train_head.input());
  for (int64_t i = 0; i < batch; ++i) train_full.labels()[i] = train_head.labels()[i] = testing::random_int(0, 2);
  const int64_t prefix_forwards = probes.prefix;
  train_full.forward(batch, true, 0);
  train_full.backward(batch);
  EXPECT_EQ(probes.prefix, prefix_forwards + 1);
  train_head.forward(batch, true, 0);
  train_head.backward(batch);
  EXPECT_EQ(probes.prefix, prefix_forwards + 1) << "the head-only plan ran a prefix node";
  for (size_t s = 0; s < train_full.trainable_segments().size(); ++s) {
    const ParamSegment &a = train_full.trainable_segments()[s], &b = train_head.trainable_segments()[s];
    ASSERT_EQ(a.name, b.name);
    ASSERT_EQ(a.count, b.count);
    EXPECT_TRUE(std::equal(a.grad, a.grad + a.count, b.grad)) << a.name;
  }
  EXPECT_EQ(train_full.read_metrics().loss_sum, train_head.read_metrics().loss_sum);
  for (int n = 0; n <= cut; ++n) EXPECT_EQ(train_head.backward_calls()[size_t(n)], 0);

  // A trainable node before the cut cannot be left out.
  t.frozen.assign(size_t(m->num_nodes()), false);
  EXPECT_TRUE(has(error_of([&] { Executor bad(*m, t); }), "conv1 has trainable parameters"));
}

// --- the cache as a source ---

TEST(FeatureCache, ReplaysItsSourceExactly) {
  HostPool pool;
  Probes probes;
  auto m = probed(pool, testing::test_seed(), probes);
  const int cut = m->find_node("flatten");
  InMemorySource data(random_dataset(29, 3));
  FeatureCache cache(*m, cut, data, 8, /*reference_kernels=*/true);
  EXPECT_EQ(cache.size(), 29);
  EXPECT_EQ(cache.sample_shape(), Shape{64});
  EXPECT_EQ(cache.bytes(), size_t(29 * 64) * sizeof(float));
  EXPECT_EQ(cache.labels(), data.labels());
  EXPECT_EQ(cache.origin(), data.origin());
  EXPECT_EQ(probes.prefix, 4) << "one pass in batches of 8";

  ExecutorOptions eo;
  eo.batch = 8;
  eo.training = false;
  eo.stop_after = cut;
  eo.reference_kernels = true;
  Executor prefix(*m, eo);
  std::vector<float> features(8 * 64);
  std::vector<int32_t> labels(8);
  for (int round = 0; round < 4; ++round) {
    const uint64_t seed = uint64_t(testing::random_int(0, 1000));
    const int64_t epoch = testing::random_int(1, 9), skip = round == 0 ? 0 : testing::random_int(0, 29);
    const int64_t max = testing::random_int(1, 8);
    const bool shuffle = round != 1;
    data.start_epoch(seed, epoch, shuffle, false, skip);
    cache.start_epoch(seed, epoch, shuffle, false, skip);
    for (;;) {
      const int64_t n = data.next_batch(max, prefix.input(), prefix.labels());
      ASSERT_EQ(cache.next_batch(max, features.data(), labels.data()), n);
      ASSERT_EQ(cache.position(), data.position());
      if (!n) break;
      prefix.forward(n, false, 0);
      EXPECT_TRUE(std::equal(labels.begin(), labels.begin() + n, prefix.labels()));
      EXPECT_TRUE(std::equal(features.begin(), features.begin() + n * 64, prefix.output()))
          << "cached features differ from the prefix's output";
    }
  }
  EXPECT_TRUE(has(error_of([&] { cache.start_epoch(1, 1, true, /*augment=*/true); }), "--cache-features off"));
}

// --- training ---

// The reference kernels compute each example's features with the same loops whatever batch
// it is in, so cached training is bit-identical; with class weights, label smoothing,
// gradient accumulation, dropout in the head, validation and --check-finite all on.
TEST(FeatureCache, TrainingWithTheCacheEqualsTrainingWithoutBitwiseOnReferenceKernels) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(44, 3)), val(random_dataset(13, 3));
  const uint64_t init = testing::test_seed();
  std::vector<std::vector<float>> result;
  std::vector<std::vector<EpochReport>> reports;
  for (FeatureCacheMode mode : {FeatureCacheMode::Off, FeatureCacheMode::On}) {
    auto m = cnn(pool, init);
    TrainOptions o = options(3, mode);
    o.reference_kernels = true;
    o.frozen = resolve_freeze_patterns(*m, {"conv*"});
    o.class_weights = {1.0f, 2.0f, 0.5f};
    o.label_smoothing = 0.1f;
    o.grad_accumulation = 2;
    o.check_finite = true;
    o.metrics_path = dir.file(mode == FeatureCacheMode::On ? "on.jsonl" : "off.jsonl");
    std::ostringstream log;
    ::testing::internal::CaptureStderr();
    reports.push_back(train(*m, data, &val, o, log));
    const std::string err = ::testing::internal::GetCapturedStderr();
    if (mode == FeatureCacheMode::On) {
      EXPECT_TRUE(has(err, "feature cache: on, after 'head.0'")) << err;
      EXPECT_TRUE(has(err, "feature cache: built in")) << err;
    } else {
      EXPECT_EQ(err, "");
    }
    result.push_back(params(*m));
  }
  EXPECT_TRUE(result[0] == result[1]) << "cached training differs from uncached training";
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(reports[0][e].train.loss_sum, reports[1][e].train.loss_sum) << e;
    EXPECT_EQ(reports[0][e].train.correct, reports[1][e].train.correct) << e;
    EXPECT_EQ(reports[0][e].validation->loss_sum, reports[1][e].validation->loss_sum) << e;
  }
  EXPECT_EQ(reports[0][0].cache_seconds, 0.0);
  EXPECT_GT(reports[1][0].cache_seconds, 0.0);
  EXPECT_GE(reports[1][0].seconds, reports[1][0].cache_seconds);
  EXPECT_EQ(reports[1][1].cache_seconds, 0.0);
  std::istringstream lines(testing::slurp(dir.file("on.jsonl")));
  std::string first, second;
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_TRUE(has(first, "\"cache_seconds\"")) << first;
  EXPECT_FALSE(has(second, "\"cache_seconds\"")) << second;
}

// The fast kernels (OpenBLAS GEMM) may round an example differently depending on where it
// sits in a batch (the cache builds in dataset order, uncached epochs in shuffled order),
// so the runs agree to float rounding rather than bitwise.
TEST(FeatureCache, TrainingWithTheCacheIsCloseOnFastKernels) {
  HostPool pool;
  InMemorySource data(random_dataset(44, 3)), val(random_dataset(13, 3));
  const uint64_t init = testing::test_seed();
  std::vector<std::vector<float>> result;
  std::vector<double> val_loss;
  for (FeatureCacheMode mode : {FeatureCacheMode::Off, FeatureCacheMode::On}) {
    auto m = cnn(pool, init);
    TrainOptions o = options(3, mode);
    o.frozen = resolve_freeze_patterns(*m, {"conv*"});
    std::ostringstream log;
    ::testing::internal::CaptureStderr();
    const auto r = train(*m, data, &val, o, log);
    ::testing::internal::GetCapturedStderr();
    result.push_back(params(*m));
    val_loss.push_back(r.back().validation->loss());
  }
  const double err = testing::relative_error(result[1], result[0]);
  std::printf("[graft] fast kernels: cached vs uncached parameters, relative error %g%s\n", err,
              result[0] == result[1] ? " (bitwise equal)" : "");
  EXPECT_LT(err, 1e-5);
  EXPECT_NEAR(val_loss[1], val_loss[0], 1e-5 * std::max(1.0, std::abs(val_loss[0])));
}

TEST(FeatureCache, ResumeMidEpochWithTheCacheIsBitIdentical) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(52, 3));  // 7 batches of 8 per epoch
  const uint64_t init = testing::test_seed();
  std::ostringstream log;
  Probes p1, p2, p3;
  auto frozen_of = [](const Model& m) { return resolve_freeze_patterns(m, {"conv1"}); };

  auto straight = probed(pool, init, p1);
  TrainOptions o = options(3, FeatureCacheMode::On);
  o.frozen = frozen_of(*straight);
  ::testing::internal::CaptureStderr();
  train(*straight, data, nullptr, o, log);

  install_interrupt_handlers();
  clear_interrupt();
  auto interrupted = probed(pool, init, p2, /*raise_at=*/testing::random_int(2, 17));
  o.save_path = dir.file("run.safetensors");
  try {
    train(*interrupted, data, nullptr, o, log);
    ::testing::internal::GetCapturedStderr();
    FAIL() << "expected an interrupt";
  } catch (const Interrupted& i) {
    EXPECT_EQ(i.exit_code(), 143);
  }
  clear_interrupt();

  auto resumed = probed(pool, init + 7, p3);
  o.resume_path = o.save_path;
  train(*resumed, data, nullptr, o, log);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(params(*straight) == params(*resumed)) << "an interrupted and resumed cached run differs";
  EXPECT_EQ(p3.prefix, 7) << "the resumed run rebuilds the cache: one pass over the data";
  EXPECT_TRUE(has(log.str(), "resuming")) << log.str();
}

// Cached epochs run no prefix node: its forward count stays at the build's one pass, the
// head's grows with the epochs.
TEST(FeatureCache, CachedEpochsRunOnlyTheHead) {
  HostPool pool;
  InMemorySource data(random_dataset(44, 3)), val(random_dataset(10, 3));  // 6 batches of 8, 2 of val
  const uint64_t init = testing::test_seed();
  std::ostringstream log;
  for (int epochs : {1, 3}) {
    Probes cached, plain;
    auto a = probed(pool, init, cached);
    TrainOptions o = options(epochs, FeatureCacheMode::On);
    o.frozen = resolve_freeze_patterns(*a, {"conv1"});
    ::testing::internal::CaptureStderr();
    train(*a, data, &val, o, log);
    ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(cached.prefix, 6 + 2) << "the cache builds: training and validation, once";
    EXPECT_EQ(cached.head, epochs * (6 + 2));

    auto b = probed(pool, init, plain);
    o.cache_features = FeatureCacheMode::Off;
    train(*b, data, &val, o, log);
    EXPECT_EQ(plain.prefix, epochs * (6 + 2));
    EXPECT_EQ(plain.head, epochs * (6 + 2));
  }
}

TEST(FeatureCache, CheckFiniteNamesTheHeadLayer) {
  HostPool pool;
  InMemorySource data(random_dataset(16, 3));
  auto m = cnn(pool, testing::test_seed());
  for (size_t p = 0; p < m->params().size(); ++p)
    if (m->params()[p].name == "head.4.weight") m->param_data(p)[3] = std::numeric_limits<float>::quiet_NaN();
  TrainOptions o = options(1, FeatureCacheMode::On);
  o.frozen = resolve_freeze_patterns(*m, {"conv*"});
  o.check_finite = true;
  std::ostringstream log;
  ::testing::internal::CaptureStderr();
  const std::string e = error_of([&] { train(*m, data, nullptr, o, log); });
  ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(has(e, "became NaN")) << e;
  EXPECT_TRUE(has(e, "the first layer whose output was not finite is head.4")) << e;
}

// --- image folders: unreadable files ---

void write_folder(const fs::path& root, int per_class, bool bad) {
  for (const char* cls : {"ant", "bee", "cat"})
    for (int i = 0; i < per_class; ++i)
      testing::write_image(root / cls / ("i" + std::to_string(i) + ".png"),
                           testing::random_image(testing::random_int(6, 12), testing::random_int(6, 12)));
  if (!bad) return;
  std::ofstream(root / "ant" / "i1x_empty.png").flush();
  std::ofstream(root / "cat" / "i2x_junk.png") << "not a png at all";
}

TEST(FeatureCache, UnreadableImagesStaySkippedAndCounted) {
  TempDir dir;
  write_folder(dir.path / "data", 5, /*bad=*/true);
  ImageFolderOptions f;
  f.height = f.width = 8;
  f.bad_images = BadImagePolicy::Skip;
  f.threads = 2;
  ImageFolderSource src((dir.path / "data").string(), f);
  ASSERT_EQ(src.size(), 17);
  const uint64_t init = testing::test_seed();
  HostPool pool;
  std::vector<std::vector<float>> result;
  std::vector<std::vector<EpochReport>> reports;
  ::testing::internal::CaptureStderr();
  for (FeatureCacheMode mode : {FeatureCacheMode::Off, FeatureCacheMode::On}) {
    auto m = cnn(pool, init, 3, Shape{8, 8, 3});
    TrainOptions o = options(2, mode);
    o.batch = 4;
    o.reference_kernels = true;
    o.frozen = resolve_freeze_patterns(*m, {"conv*"});
    std::ostringstream log;
    reports.push_back(train(*m, src, nullptr, o, log));
    result.push_back(params(*m));
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(has(err, "i1x_empty.png") && has(err, "i2x_junk.png")) << err;
  EXPECT_TRUE(result[0] == result[1]) << "cached training on an image folder differs";
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(reports[0][e].skipped_examples, 2);
    EXPECT_EQ(reports[1][e].skipped_examples, 2) << "the cache must keep skipping and counting";
    EXPECT_EQ(reports[1][e].train.count, 15);
  }

  // The cache itself: the same positions and counts as the folder, resumed mid-epoch too.
  auto m = cnn(pool, init, 3, Shape{8, 8, 3});
  FeatureCache cache(*m, m->find_node("head.0"), src, 4, true);
  EXPECT_EQ(cache.unreadable(), 2);
  for (int64_t skip : {int64_t(0), int64_t(5), int64_t(16)}) {
    src.start_epoch(11, 3, true, false, skip);
    cache.start_epoch(11, 3, true, false, skip);
    std::vector<int32_t> la(4), lb(4);
    for (;;) {
      const int64_t n = src.next_batch(4, nullptr, la.data());
      ASSERT_EQ(cache.next_batch(4, nullptr, lb.data()), n);
      ASSERT_EQ(cache.position(), src.position());
      ASSERT_EQ(cache.skipped(), src.skipped());
      if (!n) break;
      EXPECT_TRUE(std::equal(la.begin(), la.begin() + n, lb.begin()));
    }
  }
}

// --- the graft program ---

class FeatureCacheCli : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string train_args(const std::string& extra) {
    return "train --device cpu --progress off --model fmnist_cnn --epochs 2 --batch 4 --seed 3 --freeze 'conv*' " + extra;
  }
};

TEST_F(FeatureCacheCli, FashionMnistAutoSaysOn) {
  if (!fs::exists(fs::path(kFashionMnistDir) / "t10k-labels-idx1-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  auto r = testing::run_graft(train_args("--classes 0-2 --per-class 8 --metrics " + dir_.file("m.jsonl")));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "feature cache: on, after 'flatten' ([3136] per example)")) << r.output;
  EXPECT_TRUE(has(r.output, "feature cache: built in")) << r.output;
  EXPECT_TRUE(has(r.output, "epoch   2/2")) << r.output;
  EXPECT_TRUE(has(testing::slurp(dir_.file("m.jsonl")), "cache_seconds"));
  // Augmentation flags do nothing to Fashion-MNIST (in memory), so they leave the cache on.
  r = testing::run_graft(train_args("--classes 0-2 --per-class 8 --hflip"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "feature cache: on")) << r.output;
  // Nothing frozen: auto says why it is off; on is an error.
  r = testing::run_graft("train --device cpu --progress off --classes 0-2 --per-class 4 --epochs 1 --batch 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "feature cache: off: no layer is frozen")) << r.output;
  r = testing::run_graft("train --device cpu --progress off --classes 0-2 --per-class 4 --epochs 1 --cache-features on");
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(has(r.output, "--cache-features on: cannot cache") && has(r.output, "Use --cache-features off"))
      << r.output;
}

TEST_F(FeatureCacheCli, ImageFolderAugmentationTurnsItOffAndConfigSetsIt) {
  const std::string data = "--data " + (dir_.path / "data").string() + " --input 8 ";
  write_folder(dir_.path / "data", 4, /*bad=*/false);
  auto r = testing::run_graft(train_args(data));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "feature cache: on, after 'flatten'")) << r.output;

  r = testing::run_graft(train_args(data + "--hflip"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, "feature cache: off: the training data is augmented")) << r.output;
  EXPECT_FALSE(has(r.output, "feature cache: built")) << r.output;
  r = testing::run_graft(train_args(data + "--zoom 0.2 --cache-features on"));
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(has(r.output, "augmented") && has(r.output, "--cache-features off")) << r.output;

  std::ofstream(dir_.file("run.yaml")) << "cache_features: 'off'\n";
  r = testing::run_graft(train_args(data + "--config " + dir_.file("run.yaml")));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(has(r.output, "feature cache")) << r.output;
}

}  // namespace
}  // namespace graft
