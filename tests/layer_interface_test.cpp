// What the runtime asks a layer through the Layer interface, seen from the outside: a dense
// layer after a flatten keeps PyTorch's CHW column order through pass-through layers
// (dropout, relu, batch norm, whose own per-feature values follow it) in its checkpoint; a layer that says it is random in training ends the
// frozen prefix (feature cache, frozen chunks) with its own reason; batch norm in training
// refuses one value per channel as PyTorch does.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/head.h"
#include "layers/simple_layers.h"
#include "runtime/checkpoint.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/frozen_prefix.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

using testing::error_of;
using testing::has;
using testing::TempDir;

// A head alone on an [H, W, C] input (the model a feature cache trains).
std::unique_ptr<Model> head_model(MemoryPool& pool, const Shape& sample, const std::string& head, int classes,
                                  uint64_t seed) {
  auto m = std::make_unique<Model>("head", sample, pool);
  graft_head(*m, parse_head(head), classes);
  m->finalize(seed);
  return m;
}

// PyTorch's view of the same head in evaluation, from the checkpoint alone: the NHWC input
// flattened in (c, h, w) order, relu where the head has one (dropout is the identity), batch
// norm `bn` with its running statistics where named, then the saved dense weight
// [K, C*H*W] and bias.
std::vector<double> torch_style_logits(const SafetensorsFile& f, const std::string& dense, bool relu,
                                       const std::string& bn, const std::vector<float>& nhwc, int n, int h, int w,
                                       int c) {
  auto bn_tensor = [&](const std::string& t) { return bn.empty() ? std::vector<float>{} : f.tensors.at(bn + "." + t).to_floats(); };
  const auto gamma = bn_tensor("weight"), beta = bn_tensor("bias"), mean = bn_tensor("running_mean"),
             var = bn_tensor("running_var");
  const auto W = f.tensors.at(dense + ".weight").to_floats();
  const auto B = f.tensors.at(dense + ".bias").to_floats();
  const size_t in = size_t(h) * w * c, classes = B.size();
  EXPECT_EQ(W.size(), classes * in);
  std::vector<double> y(size_t(n) * classes);
  for (int b = 0; b < n; ++b)
    for (size_t k = 0; k < classes; ++k) {
      double s = B[k];
      for (int ci = 0; ci < c; ++ci)
        for (int i = 0; i < h; ++i)
          for (int j = 0; j < w; ++j) {
            const size_t feature = (size_t(ci) * h + i) * w + j;  // PyTorch's flatten order
            double v = nhwc[((size_t(b) * h + i) * w + j) * c + ci];
            if (relu) v = std::max(0.0, v);
            if (!bn.empty()) v = (v - mean[feature]) / std::sqrt(double(var[feature]) + 1e-5) * gamma[feature] + beta[feature];
            s += W[k * in + feature] * v;
          }
      y[size_t(b) * classes + k] = s;
    }
  return y;
}

TEST(LayerInterface, DenseAfterFlattenKeepsChwOrderThroughPassThroughLayers) {
  TempDir dir;
  HostPool pool;
  const int h = testing::random_int(2, 4), w = testing::random_int(2, 4), c = testing::random_int(2, 5);
  const int classes = testing::random_int(2, 5), n = 3;
  struct Case {
    std::string head, dense;
    bool relu;
    std::string bn;  // a batch norm (BatchNorm1d) between flatten and dense: its name
  };
  for (const Case& k : {Case{"flatten,dense:N", "head.1", false, ""}, Case{"flatten,dropout:0.5,dense:N", "head.2", false, ""},
                        Case{"flatten,relu,dense:N", "head.2", true, ""},
                        Case{"flatten,relu,dropout:0.3,dense:N", "head.3", true, ""},
                        Case{"flatten,bn,dense:N", "head.2", false, "head.1"}}) {
    SCOPED_TRACE(k.head);
    auto m = head_model(pool, Shape{h, w, c}, k.head, classes, testing::test_seed() + testing::rng()());
    if (!k.bn.empty()) {  // fresh statistics and affine values, one per feature (they start uniform)
      float* host = m->host_params();
      for (int p : m->node_params(m->find_node(k.bn))) {
        const ParamInfo& info = m->params()[size_t(p)];
        if (info.spec.shape.rank() != 1) continue;  // num_batches_tracked
        const bool var = info.name.ends_with("running_var");
        const auto v = testing::random_floats(size_t(info.spec.shape.numel()), var ? 0.5f : -1.0f, var ? 2.0f : 1.0f);
        std::copy(v.begin(), v.end(), host + info.offset);
      }
      m->upload_params();
    }
    const std::string file = dir.file("m.safetensors");
    save_checkpoint(file, *m, nullptr, {}, {});
    const auto f = read_safetensors(file);
    const auto x = testing::random_floats(size_t(n) * h * w * c);
    const auto ours = testing::eval_logits(*m, x, n);
    const auto theirs = torch_style_logits(f, k.dense, k.relu, k.bn, x, n, h, w, c);
    EXPECT_LT(testing::relative_error(ours, std::vector<float>(theirs.begin(), theirs.end())), testing::kFp32Tolerance);
  }
}

// A test-only identity that says it is random in training: with `reason`, in its own
// words; without, only through draws_random_numbers (the interface's generic reason).
class Noise final : public Layer {
 public:
  Noise(std::string name, bool random, std::string reason = "")
      : Layer(std::move(name)), random_(random), reason_(std::move(reason)) {}
  std::string kind() const override { return "noise"; }
  std::string describe() const override { return "noise"; }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  bool backward_reads_inputs() const override { return false; }
  bool draws_random_numbers() const override { return random_; }
  std::string training_randomness() const override {
    return random_ && !reason_.empty() ? reason_ : Layer::training_randomness();
  }
  void forward(const ForwardArgs& a) override {
    std::memcpy(a.output, a.inputs[0], size_t(a.output_shape.numel()) * sizeof(float));
  }
  void backward(const BackwardArgs& a) override {
    if (a.dinputs[0]) std::memcpy(a.dinputs[0], a.doutput, size_t(a.output_shape.numel()) * sizeof(float));
  }

 private:
  bool random_;
  std::string reason_;
};

TEST(LayerInterface, ALayerRandomInTrainingEndsTheFrozenPrefix) {
  HostPool pool;
  // conv (frozen) -> noise -> flatten -> fc, or noise first.
  auto model = [&](bool noise_first, bool random, const std::string& reason) {
    auto m = std::make_unique<Model>("custom", Shape{4, 4, 2}, pool);
    if (noise_first) m->add(std::make_unique<Noise>("noise", random, reason));
    m->add(std::make_unique<Conv2d>("conv", 2, Conv2dOptions{2, 3, 1, 1, true}));
    if (!noise_first) m->add(std::make_unique<Noise>("noise", random, reason));
    m->add(std::make_unique<Flatten>("flatten"));
    m->add(std::make_unique<Dense>("fc", 32, 3));
    m->finalize(testing::test_seed());
    return m;
  };
  const std::string own = "(noise, sigma " + std::to_string(testing::random_int(1, 99)) + ") jitters in training";
  const PrefixChunkMode chunks{PrefixChunkMode::Examples, 2};
  for (const std::string& reason : {own, std::string()}) {
    const std::string said = "'noise' " + (reason.empty() ? "(noise) draws random numbers in training" : reason);
    SCOPED_TRACE(said);
    // Deterministic, the same layer lets the prefix run on to the flatten.
    auto quiet = model(false, false, reason);
    const auto frozen = resolve_freeze_patterns(*quiet, {"conv"});
    EXPECT_EQ(find_feature_cut(*quiet, frozen).node, quiet->find_node("flatten"));
    EXPECT_EQ(decide_prefix_chunking(chunks, *quiet, frozen, 8).through, quiet->find_node("flatten"));
    EXPECT_EQ(training_randomness(*quiet, quiet->find_node("noise")), "");
    // Random after the frozen conv: the cut and the chunks stop before it, saying why.
    auto after = model(false, true, reason);
    EXPECT_EQ(training_randomness(*after, after->find_node("noise")), said);
    const FeatureCut cut = find_feature_cut(*after, frozen);
    EXPECT_EQ(cut.node, after->find_node("conv"));
    EXPECT_TRUE(has(cut.note, "it stops before " + said)) << cut.note;
    EXPECT_EQ(decide_prefix_chunking(chunks, *after, frozen, 8).through, after->find_node("conv"));
    // Random first: no prefix at all; --frozen-chunk N refuses with the reason.
    auto first = model(true, true, reason);
    const auto frozen_first = resolve_freeze_patterns(*first, {"conv"});
    const FeatureCut none = find_feature_cut(*first, frozen_first);
    EXPECT_EQ(none.node, -1);
    EXPECT_TRUE(has(none.why_not, said)) << none.why_not;
    const std::string msg = error_of([&] { decide_prefix_chunking(chunks, *first, frozen_first, 8); });
    EXPECT_TRUE(has(msg, "--frozen-chunk 2") && has(msg, said)) << msg;
  }
}

// Training forward of a batch-norm-first head on `sample` with `batch` examples.
std::string bn_forward_error(MemoryPool& pool, const Shape& sample, int64_t batch, bool training,
                             const std::string& head = "bn,flatten,dense:N") {
  auto m = head_model(pool, sample, head, 3, testing::test_seed());
  ExecutorOptions o;
  o.batch = batch;
  o.training = training;
  Executor ex(*m, o);
  const auto x = testing::random_floats(size_t(batch * sample.numel()));
  std::copy(x.begin(), x.end(), ex.input());
  std::fill(ex.labels(), ex.labels() + batch, 0);
  return error_of([&] { ex.forward(batch, training, 0); });
}

TEST(LayerInterface, BatchNormInTrainingRefusesOneValuePerChannel) {
  HostPool pool;
  const int c = testing::random_int(2, 6);
  // As PyTorch: "Expected more than 1 value per channel when training, got input size ...".
  std::string msg = bn_forward_error(pool, Shape{1, 1, c}, 1, true);
  for (const std::string& part : {std::string("layer head.0"), std::string("expected more than 1 value per channel when training"),
                                  "got input size [1, 1, 1, " + std::to_string(c) + "]", std::string("--bn 'head.0=frozen-stats'")})
    EXPECT_TRUE(has(msg, part)) << "missing '" << part << "' in: " << msg;
  // After a dense (BatchNorm1d): one example is one value per feature.
  msg = bn_forward_error(pool, Shape{2, 2, c}, 1, true, "flatten,dense:4,bn,dense:N");
  EXPECT_TRUE(has(msg, "layer head.2") && has(msg, "got input size [1, 4]")) << msg;
  // More than one value per channel, or evaluation (running statistics): no error.
  EXPECT_EQ(bn_forward_error(pool, Shape{2, 1, c}, 1, true), "(no error)");
  EXPECT_EQ(bn_forward_error(pool, Shape{1, 1, c}, 2, true), "(no error)");
  EXPECT_EQ(bn_forward_error(pool, Shape{1, 1, c}, 1, false), "(no error)");
}

}  // namespace
}  // namespace graft
