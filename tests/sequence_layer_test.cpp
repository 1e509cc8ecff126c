// Sequence layers and specs without running their kernels: the spec grammar and its
// errors, PyTorch's parameter names, shapes and initialisation, output shapes (an image
// read a row per step), the backbone patterns, what the executor plans and refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "layers/embedding.h"
#include "layers/recurrent.h"
#include "layers/sequence_pool.h"
#include "layers/sequence_spec.h"
#include "layers/zoo.h"
#include "runtime/executor.h"
#include "runtime/memory_pool.h"
#include "runtime/onnx/graph.h"
#include "tests/testing.h"

namespace graft {
namespace {

std::unique_ptr<Model> build(const std::string& arch, Shape sample, HostPool& pool, int classes = 5,
                             const std::string& head = "") {
  ModelSpec spec;
  spec.architecture = arch;
  spec.sample_shape = sample;
  spec.num_classes = classes;
  spec.seed = testing::test_seed();
  spec.head = head;
  return build_model(spec, pool);
}

std::vector<std::string> param_names(const Model& m) {
  std::vector<std::string> names;
  for (const auto& p : m.params()) names.push_back(p.name);
  return names;
}

TEST(SequenceSpec, NamesAndShapesArePyTorchs) {
  HostPool pool;
  const int h = testing::random_int(2, 20), vocab = testing::random_int(10, 100), dim = testing::random_int(2, 9);
  const int steps = testing::random_int(2, 12);
  auto m = build("embedding:" + std::to_string(vocab) + "x" + std::to_string(dim) + ",pad:0,gru:" + std::to_string(h) +
                     "x2,bi,dropout:0.25,mean,dense:16,relu,dense:N",
                 Shape{steps, 1}, pool);
  std::vector<std::string> nodes;
  for (const auto& n : m->nodes()) nodes.push_back(n.name);
  EXPECT_EQ(nodes, (std::vector<std::string>{"embedding", "gru", "pool", "fc1", "relu", "fc2"}));
  std::vector<std::string> want{"embedding.weight"};
  for (int l = 0; l < 2; ++l)
    for (std::string d : {"", "_reverse"})
      for (std::string p : {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}) want.push_back("gru." + p + "_l" + std::to_string(l) + d);
  for (std::string p : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}) want.push_back(p);
  EXPECT_EQ(param_names(*m), want);
  auto shape_of = [&](const std::string& name) {
    for (const auto& p : m->params())
      if (p.name == name) return p.spec.checkpoint_shape;
    return Shape{};
  };
  EXPECT_EQ(shape_of("gru.weight_ih_l0"), (Shape{3 * h, dim}));
  EXPECT_EQ(shape_of("gru.weight_ih_l1_reverse"), (Shape{3 * h, 2 * h}));  // layer 1 reads both directions
  EXPECT_EQ(shape_of("gru.weight_hh_l1"), (Shape{3 * h, h}));
  EXPECT_EQ(shape_of("gru.bias_hh_l0_reverse"), (Shape{3 * h}));
  EXPECT_EQ(shape_of("fc1.weight"), (Shape{16, 2 * h}));
  const auto shapes = m->infer_shapes(3);
  EXPECT_EQ(shapes[0], (Shape{3, steps, dim}));
  EXPECT_EQ(shapes[1], (Shape{3, steps, 2 * h}));
  EXPECT_EQ(shapes[2], (Shape{3, 2 * h}));
  EXPECT_EQ(shapes.back(), (Shape{3, 5}));
  const auto& gru = dynamic_cast<const Recurrent&>(*m->nodes()[1].layer);
  EXPECT_FLOAT_EQ(gru.options().dropout, 0.25f);  // between its two layers
  EXPECT_TRUE(gru.draws_random_numbers());
  EXPECT_EQ(sequence_backbone_patterns(m->architecture()), (std::vector<std::string>{"embedding", "gru"}));
  EXPECT_EQ(backbone_patterns(m->architecture()), (std::vector<std::string>{"embedding", "gru"}));
}

// PyTorch: every recurrent parameter from U(-1/sqrt(hidden), 1/sqrt(hidden)), the embedding
// from N(0, 1) with its padding row zero.
TEST(SequenceSpec, InitialisationIsPyTorchs) {
  HostPool pool;
  const int h = testing::random_int(16, 40), pad = testing::random_int(0, 49);
  auto m = build("embedding:50x32,pad:" + std::to_string(pad) + ",lstm:" + std::to_string(h) + ",last,dense:N",
                 Shape{5, 1}, pool);
  const double bound = 1.0 / std::sqrt(double(h));
  for (size_t p = 0; p < m->params().size(); ++p) {
    const auto& info = m->params()[p];
    const float* v = m->param_data(p);
    const int64_t count = info.spec.shape.numel();
    if (info.name.rfind("lstm.", 0) == 0) {
      double lo = 1, hi = -1;
      for (int64_t i = 0; i < count; ++i) lo = std::min(lo, double(v[i])), hi = std::max(hi, double(v[i]));
      EXPECT_GE(lo, -bound) << info.name;
      EXPECT_LE(hi, bound) << info.name;
      EXPECT_LT(lo, -0.8 * bound) << info.name;  // spread over the range
      EXPECT_GT(hi, 0.8 * bound) << info.name;
    } else if (info.name == "embedding.weight") {
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < count; ++i) sum += v[i], sq += double(v[i]) * v[i];
      for (int j = 0; j < 32; ++j) EXPECT_EQ(v[pad * 32 + j], 0.0f);
      const double n = double(count - 32), mean = sum / n;
      EXPECT_NEAR(mean, 0.0, 0.15);
      EXPECT_NEAR(std::sqrt(sq / n - mean * mean), 1.0, 0.15);
    }
  }
}

TEST(SequenceSpec, ImagesAreReadARowPerStep) {
  HostPool pool;
  auto m = build("lstm:32,last,dense:N", Shape{28, 28, 1}, pool, 10);
  EXPECT_EQ(m->nodes()[0].layer->describe(), "lstm 28->32");
  EXPECT_EQ(m->infer_shapes(2)[0], (Shape{2, 28, 32}));
  auto rgb = build("gru:8x3,bi,last,dense:N", Shape{6, 4, 3}, pool, 2);
  EXPECT_EQ(rgb->nodes()[0].layer->describe(), "gru 12->8x3 bi");
}

TEST(SequenceSpec, MistakesNameTheTokenAndWhatIsExpected) {
  HostPool pool;
  auto expect = [&](const std::string& arch, const std::vector<std::string>& parts, Shape sample = Shape{6, 4}) {
    SCOPED_TRACE(arch);
    testing::expect_error([&] { build(arch, sample, pool); }, parts);
  };
  expect("lstm:0,last,dense:N", {"token 1 'lstm:0'", "lstm:H or lstm:HxL"});
  expect("lstm:8x,last,dense:N", {"token 1 'lstm:8x'", "hidden size"});
  expect("lstm,last,dense:N", {"token 1 'lstm'", "lstm:H"});
  expect("lstm:8,bi,bi,last,dense:N", {"token 3 'bi'", "follows the lstm or gru"});
  expect("lstm:8,last,lstm:4,dense:N", {"token 3 'lstm:4'", "after the pool"});
  expect("lstm:8,dense:N", {"token 2 'dense:N'", "before the pool"});
  expect("lstm:8,last,mean,dense:N", {"token 3 'mean'", "second pool"});
  expect("lstm:8,last,dense:N,dropout:1.5", {"token 4 'dropout:1.5'", "[0, 1)"});
  expect("lstm:8,last,dense:N,softmax", {"token 4 'softmax'", "not a known layer", "lstm:H[xL]"});
  expect("lstm:8,embedding:10x4,last,dense:N", {"token 2", "must come first"});
  expect("embedding:10,lstm:4,last,dense:N", {"token 1 'embedding:10'", "embedding:VxD"}, Shape{6, 1});
  expect("embedding:10x4,pad:10,lstm:4,last,dense:N", {"token 2 'pad:10'", "0..9"}, Shape{6, 1});
  expect("lstm:8,last,relu", {"ends with 'relu'", "dense:N"});
  expect("lstm:8,dense:4", {"token 2", "before the pool"});
  expect("lstm:8", {"no pool", "last, mean or flatten"});
  expect("lstm:8,last,dense:N", {"lstm", "[1, 6]", "sequence [steps, features]"}, Shape{6});
  expect("embedding:10x4,lstm:4,last,dense:N", {"embedding", "token ids [N, steps, 1]", "[1, 6, 4]"});
  expect("lstmm:8,last,dense:N", {"not a known architecture", "lstm:128x2,last,dense:N"});
  ModelSpec divided;
  divided.architecture = "lstm:8,last,dense:N";
  divided.sample_shape = Shape{6, 4};
  divided.width_divisor = 2;
  testing::expect_error([&] { build_model(divided, pool); }, {"--width-divisor 2", "states its sizes itself"});
}

TEST(SequenceSpec, HeadsAndBackbones) {
  HostPool pool;
  auto m = build("lstm:8x2,dropout:0.1,last,dense:N", Shape{5, 3}, pool, 4, "dense:16,relu,dense:N");
  std::vector<std::string> nodes;
  for (const auto& n : m->nodes()) nodes.push_back(n.name);
  EXPECT_EQ(nodes, (std::vector<std::string>{"lstm", "pool", "head.0", "head.1", "head.2"}));
  ModelSpec spec;
  spec.architecture = "lstm:8,bi,mean,dense:N";
  spec.sample_shape = Shape{5, 3};
  spec.include_top = false;
  auto backbone = build_model(spec, pool);
  EXPECT_EQ(backbone->nodes().back().name, "pool");
  EXPECT_EQ(backbone->infer_shapes(1).back(), (Shape{1, 16}));
  // A one-layer lstm has no layers to drop out between: dropout:P is a layer on its output.
  auto single = build("lstm:8,dropout:0.3,last,dense:N", Shape{5, 3}, pool);
  EXPECT_EQ(single->nodes()[1].name, "dropout");
  EXPECT_EQ(single->nodes()[1].layer->kind(), "dropout");
  EXPECT_EQ(resolve_freeze_patterns(*single, backbone_patterns(single->architecture())),
            (std::vector<bool>{true, false, false, false}));
}

TEST(SequenceLayers, RefuseWhatTheyCannotDo) {
  testing::expect_error([] { Embedding("e", 10, 4, 10); }, {"padding index 10", "0..9"});
  testing::expect_error([] { Recurrent("r", 4, RecurrentOptions{RnnCell::LSTM, 8, 1, false, 1.0f}); }, {"[0, 1)"});
  SequencePool pool("pool", SequencePoolMode::Last);
  testing::expect_error([&] { pool.output_shape({Shape{2, 3}}); }, {"pool", "[N, steps, features]", "[2, 3]"});
  Recurrent lstm("lstm", 4, RecurrentOptions{RnnCell::LSTM, 8, 2, true, 0.0f});
  testing::expect_error([&] { lstm.output_shape({Shape{2, 5, 3}}); }, {"lstm", "[N, steps, 4]", "[2, 5, 3]"});
  OnnxGraph graph;
  const OnnxNodeArgs args{};
  testing::expect_error([&] { lstm.export_onnx(graph, args); },  // outside a sequence model's graph
                        {"graft export: lstm needs the sequences' lengths"});
}

// Cached features carry no lengths: a cut before a layer that reads them is refused.
TEST(SequenceLayers, ExecutorRefusesCachedFeaturesBeforeALengthReader) {
  HostPool pool;
  auto m = build("embedding:20x4,lstm:6,last,dense:N", Shape{5, 1}, pool);
  ExecutorOptions o;
  o.batch = 2;
  o.frozen = resolve_freeze_patterns(*m, {"embedding"});
  o.start_after = 0;
  testing::expect_error([&] { Executor ex(*m, o); }, {"cannot start after 'embedding'", "'lstm' reads the sequences' lengths"});
}

}  // namespace
}  // namespace graft
