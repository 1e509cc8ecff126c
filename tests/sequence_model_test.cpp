// Whole sequence models against PyTorch (tests/golden/make_sequence_model.py: embedding ->
// 2-layer bidirectional LSTM over packed lengths -> last step -> linear, a GRU with mean
// pooling, and a bidirectional LSTM whose padded output is flattened): logits, loss, every gradient, and the parameters after 3 Adam steps,
// through the Executor and the Optimizer as training runs them; a frozen LSTM's plan and
// calls; lengths through a BatchSource; and a row-by-row LSTM that learns.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "layers/zoo.h"
#include "runtime/batch_source.h"
#include "runtime/executor.h"
#include "runtime/forwarding_ops.h"
#include "runtime/memory_pool.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::relative_error;

const SafetensorsFile& golden() {
  static const SafetensorsFile f = read_safetensors(GRAFT_FIXTURE_DIR "/golden_sequence_model.safetensors");
  return f;
}
std::vector<float> values(const std::string& name) {
  auto it = golden().tensors.find(name);
  if (it == golden().tensors.end()) throw std::runtime_error("fixture tensor '" + name + "' is missing");
  return it->second.to_floats();
}
const std::string& meta(const std::string& key) { return golden().metadata.at(key); }
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t c; (c = s.find(',', start)) != std::string::npos; start = c + 1) out.push_back(s.substr(start, c - start));
  out.push_back(s.substr(start));
  return out;
}

// Tolerances: the fixture is float64 arithmetic on float32 values; graft computes in float32
// with double accumulation over 7 recurrent steps and two stacked layers.
constexpr double kLogitTolerance = 1e-5, kGradTolerance = 1e-4, kAdamTolerance = 1e-4;

struct Golden {
  std::unique_ptr<Model> model;
  int64_t n = 0;
  std::vector<float> x, labels;
  std::vector<int32_t> lengths;
};

Golden load(const std::string& m, HostPool& pool) {
  Golden g;
  ModelSpec spec;
  spec.architecture = meta(m + ".spec");
  std::vector<int64_t> sample;
  for (const auto& d : split(meta(m + ".sample"))) sample.push_back(std::stoll(d));
  spec.sample_shape = Shape(sample);
  spec.num_classes = std::stoi(meta(m + ".classes"));
  g.model = build_model(spec, pool);
  // Checkpoint names are PyTorch's state dict, in its order.
  std::vector<std::string> names;
  for (const auto& p : g.model->params()) names.push_back(p.name);
  EXPECT_EQ(names, split(meta(m + ".names")));
  for (size_t p = 0; p < g.model->params().size(); ++p) {
    const auto v = values(m + ".param." + g.model->params()[p].name);
    EXPECT_EQ(int64_t(v.size()), g.model->params()[p].spec.shape.numel());
    g.model->params()[p].spec.shape.numel();
    std::copy(v.begin(), v.end(), g.model->param_data(p));
  }
  g.x = values(m + ".x");
  g.labels = values(m + ".labels");
  g.n = int64_t(g.labels.size());
  for (float l : values(m + ".lengths")) g.lengths.push_back(int32_t(l));
  return g;
}

void stage(Executor& ex, const Golden& g) {
  std::copy(g.x.begin(), g.x.end(), ex.input());
  for (int64_t i = 0; i < g.n; ++i) ex.labels()[i] = int32_t(g.labels[size_t(i)]);
  ex.set_lengths(g.lengths.data(), g.n);
}

class SequenceParity : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(SequenceParity, LogitsLossGradientsAndAdamStepsMatchPyTorch) {
  const auto [m, reference] = GetParam();
  HostPool pool;
  Golden g = load(m, pool);
  ExecutorOptions o;
  o.batch = g.n;
  o.reference_kernels = reference;
  Executor ex(*g.model, o);
  stage(ex, g);
  ex.forward(g.n, true, 0);
  EXPECT_TRUE(ex.has_lengths());
  const auto logits = values(m + ".logits");
  EXPECT_LT(relative_error(ex.output(), logits.data(), logits.size()), kLogitTolerance);
  ex.backward(g.n);
  EXPECT_NEAR(ex.last_batch_loss(), values(m + ".loss")[0], 1e-5);
  for (const auto& s : ex.trainable_segments()) {
    SCOPED_TRACE(s.name);
    const auto want = values(m + ".grad." + s.name);
    ASSERT_EQ(int64_t(want.size()), s.count);
    EXPECT_LT(relative_error(s.grad, want.data(), want.size()), kGradTolerance);
  }
  OptimizerConfig cfg;
  cfg.kind = "adam";
  cfg.lr = std::stof(meta("adam_lr"));
  Optimizer opt(cfg, ex.trainable_count(), pool);
  opt.step(ex.trainable_segments(), cfg.lr);
  for (int step = 1; step < std::stoi(meta("adam_steps")); ++step) {
    stage(ex, g);
    ex.forward(g.n, true, step);
    ex.backward(g.n);
    opt.step(ex.trainable_segments(), cfg.lr);
  }
  for (size_t p = 0; p < g.model->params().size(); ++p) {
    SCOPED_TRACE(g.model->params()[p].name);
    const auto want = values(m + ".after." + g.model->params()[p].name);
    EXPECT_LT(relative_error(g.model->param_data(p), want.data(), want.size()), kAdamTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, SequenceParity,
                         ::testing::Combine(::testing::Values("lstm", "gru", "flatten"), ::testing::Bool()),
                         [](const auto& p) {
                           return std::get<0>(p.param) + (std::get<1>(p.param) ? "_reference" : "_fast");
                         });

// Lengths apply to one forward: the same batch without them is another result, and past a
// sequence's length nothing it holds matters.
TEST(SequenceLengths, OnlyTheStepsWithinALengthCount) {
  HostPool pool;
  Golden g = load("gru", pool);
  ExecutorOptions o;
  o.batch = g.n;
  o.training = false;
  Executor ex(*g.model, o);
  stage(ex, g);
  ex.forward(g.n, false, 0);
  const std::vector<float> first(ex.output(), ex.output() + ex.output_shape(g.n).numel());
  // Fresh garbage past every length: the same logits.
  const int64_t steps = g.model->sample_shape()[0], features = g.model->sample_shape()[1];
  std::vector<float> x = g.x;
  for (int64_t b = 0; b < g.n; ++b)
    for (int64_t t = g.lengths[size_t(b)]; t < steps; ++t)
      for (int64_t f = 0; f < features; ++f) x[size_t((b * steps + t) * features + f)] = testing::random_floats(1, -5, 5)[0];
  std::copy(x.begin(), x.end(), ex.input());
  ex.set_lengths(g.lengths.data(), g.n);
  ex.forward(g.n, false, 0);
  EXPECT_EQ(std::vector<float>(ex.output(), ex.output() + first.size()), first);
  // The next forward without set_lengths reads every step.
  ex.forward(g.n, false, 0);
  EXPECT_FALSE(ex.has_lengths());
  EXPECT_NE(std::vector<float>(ex.output(), ex.output() + first.size()), first);
}

TEST(SequenceLengths, OutOfRangeLengthsAndTokenIdsAreRefusedByName) {
  HostPool pool;
  Golden g = load("lstm", pool);
  ExecutorOptions o;
  o.batch = g.n;
  Executor ex(*g.model, o);
  std::vector<int32_t> bad = g.lengths;
  const int b = testing::random_int(0, int(g.n) - 1);
  bad[size_t(b)] = testing::random_int(0, 1) ? 0 : 8;
  testing::expect_error([&] { ex.set_lengths(bad.data(), g.n); },
                        {"example " + std::to_string(b), "sequence length " + std::to_string(bad[size_t(b)]), "7 steps"});
  stage(ex, g);
  const int vocab = 13, id = vocab + testing::random_int(0, 100);
  ex.input()[3] = float(id);
  testing::expect_error([&] { ex.forward(g.n, true, 0); },
                        {"embedding", "token id " + std::to_string(id), "example 0", "vocabulary 0..12"});
}

// The source hands out each example's length with its batch, in the epoch's order.
TEST(SequenceLengths, InMemorySourceGivesTheBatchsLengths) {
  Dataset d;
  const int64_t n = testing::random_int(5, 40), steps = 6;
  d.images = HostTensor(Shape{n, steps, 1});
  d.class_names = {"a", "b"};
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(int32_t(i % 2));
    d.lengths.push_back(int32_t(1 + i % steps));
    d.images.data()[i * steps] = float(i);  // which example it is
  }
  InMemorySource source(d);
  source.start_epoch(testing::test_seed(), 1, true, false, 0);
  std::vector<float> images(size_t(7 * steps));
  std::vector<int32_t> labels(7);
  int64_t seen = 0;
  while (const int64_t got = source.next_batch(7, images.data(), labels.data())) {
    ASSERT_NE(source.batch_lengths(), nullptr);
    for (int64_t i = 0; i < got; ++i) {
      const int64_t example = int64_t(images[size_t(i * steps)]);
      EXPECT_EQ(source.batch_lengths()[i], d.lengths[size_t(example)]);
    }
    seen += got;
  }
  EXPECT_EQ(seen, n);
  Dataset images_only = d;
  images_only.lengths.clear();
  InMemorySource plain(images_only);
  plain.start_epoch(1, 1, false, false, 0);
  plain.next_batch(7, images.data(), labels.data());
  EXPECT_EQ(plain.batch_lengths(), nullptr);
}

// Counts the recurrent calls and whether forwards kept a reserve.
class CountingOps final : public ForwardingOps {
 public:
  CountingOps() : ForwardingOps(cpu_ops()) {}
  void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* hl, const int32_t* l, const RnnWeights& w,
                   float* y, float* reserve, float* ws) override {
    ++forwards;
    if (reserve) ++forwards_with_reserve;
    base_.rnn_forward(g, x, hl, l, w, y, reserve, ws);
  }
  void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* hl, const int32_t* l, const RnnWeights& w,
                    const float* y, const float* dy, float* reserve, float* dx, const RnnGradients& dw,
                    float* ws) override {
    ++backwards;
    base_.rnn_backward(g, x, hl, l, w, y, dy, reserve, dx, dw, ws);
  }
  int forwards = 0, forwards_with_reserve = 0, backwards = 0;
};

// A frozen LSTM base does no training work: no gradient buffer, no reserve in the plan,
// forwards that keep nothing, no backward; its parameters stay bitwise; the head trains.
TEST(FrozenRecurrent, NoGradientsNoReserveNoBackward) {
  HostPool pool;
  ModelSpec spec;
  spec.architecture = "lstm:" + std::to_string(testing::random_int(4, 12)) + "x2,bi,last,dense:N";
  spec.sample_shape = Shape{testing::random_int(3, 9), testing::random_int(2, 6)};
  spec.num_classes = 3;
  spec.seed = testing::test_seed();
  auto model = build_model(spec, pool);
  const int64_t batch = 4;
  auto run = [&](const std::vector<std::string>& freeze, CountingOps& ops) {
    ExecutorOptions o;
    o.batch = batch;
    o.frozen = freeze.empty() ? std::vector<bool>{} : resolve_freeze_patterns(*model, freeze);
    o.kernel_candidates = {&ops};
    auto ex = std::make_unique<Executor>(*model, o);
    const auto x = testing::random_floats(size_t(batch * spec.sample_shape.numel()));
    std::copy(x.begin(), x.end(), ex->input());
    for (int64_t i = 0; i < batch; ++i) ex->labels()[i] = int32_t(i % 3);
    ex->forward_backward(batch, 0);
    return ex;
  };
  CountingOps trained_ops, frozen_ops;
  const auto trained = run({}, trained_ops);
  EXPECT_GT(trained->plan().reserve_bytes, 0u);
  EXPECT_EQ(trained_ops.forwards_with_reserve, 2);
  EXPECT_EQ(trained_ops.backwards, 2);

  const int lstm = model->find_node("lstm");
  std::vector<float> before(model->host_params(), model->host_params() + model->total_param_count());
  const auto frozen = run({"lstm"}, frozen_ops);
  EXPECT_EQ(frozen->plan().reserve_bytes, 0u);
  EXPECT_EQ(frozen_ops.forwards, 2);
  EXPECT_EQ(frozen_ops.forwards_with_reserve, 0);
  EXPECT_EQ(frozen_ops.backwards, 0);
  EXPECT_EQ(frozen->backward_calls()[size_t(lstm)], 0);
  EXPECT_EQ(frozen->gradient_range(lstm), (std::pair<int64_t, int64_t>{0, 0}));
  EXPECT_LT(frozen->plan().gradient_bytes, trained->plan().gradient_bytes);
  EXPECT_LT(frozen->plan().arena_bytes, trained->plan().arena_bytes);
  for (const auto& s : frozen->trainable_segments()) EXPECT_EQ(s.name.rfind("fc.", 0), 0u) << s.name;
  OptimizerConfig cfg;
  Optimizer opt(cfg, frozen->trainable_count(), pool);
  opt.step(frozen->trainable_segments(), 0.1f);
  for (int p : model->node_params(lstm)) {
    const auto& info = model->params()[size_t(p)];
    EXPECT_TRUE(std::equal(model->param_data(size_t(p)), model->param_data(size_t(p)) + info.spec.shape.numel(),
                           before.begin() + info.offset))
        << info.name;
  }
}

// Dropout between stacked layers (PyTorch's dropout=): in training a function of (seed,
// step, node), another mask each step; inference has none.
TEST(SequenceDropout, BetweenLayersInTrainingOnly) {
  HostPool pool;
  ModelSpec spec;
  spec.architecture = "lstm:6x2,dropout:0.5,last,dense:N";
  spec.sample_shape = Shape{5, 3};
  spec.num_classes = 3;
  spec.seed = testing::test_seed();
  auto model = build_model(spec, pool);
  const int64_t batch = 3;
  const auto x = testing::random_floats(size_t(batch * 15));
  auto logits = [&](bool training, int64_t step) {
    ExecutorOptions o;
    o.batch = batch;
    o.training = training;
    o.seed = testing::test_seed();
    Executor ex(*model, o);
    std::copy(x.begin(), x.end(), ex.input());
    ex.forward(batch, training, step);
    return std::vector<float>(ex.output(), ex.output() + batch * 3);
  };
  const int64_t step = testing::random_int(0, 1000);
  EXPECT_EQ(logits(true, step), logits(true, step));
  EXPECT_NE(logits(true, step), logits(true, step + 1));
  EXPECT_NE(logits(true, step), logits(false, step));
  EXPECT_EQ(logits(false, step), logits(false, step + 1));
  EXPECT_NE(model->nodes()[0].layer->training_randomness().find("dropout 0.5 between layers"), std::string::npos);
}

// Fashion-MNIST's shape read row by row: 28 steps of 28 pixels. Each class lights its own
// band of columns on random rows of noise; an LSTM over the rows learns it.
TEST(SequenceTraining, RowByRowLstmLearnsSeparableImages) {
  HostPool pool;
  ModelSpec spec;
  spec.architecture = "lstm:32,last,dense:N";
  spec.sample_shape = Shape{28, 28, 1};
  spec.num_classes = 4;
  spec.seed = testing::test_seed();
  auto model = build_model(spec, pool);
  ExecutorOptions o;
  o.batch = 32;
  o.seed = testing::test_seed();
  Executor ex(*model, o);
  OptimizerConfig cfg;
  cfg.lr = 0.01f;
  Optimizer opt(cfg, ex.trainable_count(), pool);
  auto batch = [&] {
    for (int64_t i = 0; i < o.batch; ++i) {
      const int c = testing::random_int(0, 3);
      ex.labels()[i] = c;
      float* img = ex.input() + i * 28 * 28;
      const auto noise = testing::random_floats(28 * 28, 0.0f, 0.3f);
      std::copy(noise.begin(), noise.end(), img);
      for (int r = 0; r < 28; ++r)
        for (int col = 7 * c; col < 7 * c + 7; ++col) img[r * 28 + col] += 0.7f;
    }
  };
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    batch();
    ex.forward_backward(o.batch, step);
    opt.step(ex.trainable_segments(), cfg.lr);
    if (step == 0) first = ex.last_batch_loss();
    if (step >= 55) last += ex.last_batch_loss() / 5;
  }
  EXPECT_GT(first, 1.0);  // near log(4) at the start
  EXPECT_LT(last, first / 4) << "loss " << first << " -> " << last;
}

}  // namespace
}  // namespace graft
