// Running the frozen prefix in chunks (ExecutorOptions::chunk_through, --frozen-chunk):
// the same numbers as whole batches, a smaller plan, the layers it refuses and why, the
// auto decision, and the trainer with it on and off.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "layers/batchnorm.h"
#include "layers/zoo.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/frozen_prefix.h"
#include "runtime/optimizer.h"
#include "runtime/trainer.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

using testing::error_of;
using testing::has;
using testing::params;


// vgg11 at 1/8 width on 32x32 images with a small head: the cut is 'head.0' (the head's flatten).
std::unique_ptr<Model> vgg(MemoryPool& pool, uint64_t seed, std::string head = "flatten,dense:16,relu,dense:N") {
  return build_model(ModelSpec{.architecture = "vgg11", .sample_shape = Shape{32, 32, 3}, .num_classes = 5,
                               .seed = seed, .head = std::move(head), .width_divisor = 8},
                     pool);
}

struct StepsRun {
  std::vector<float> params, output;
  std::vector<double> losses;
  PlanSummary plan;
};

// Three Adam steps on fresh batches (the last one partial), chunked through `through`.
StepsRun three_steps(uint64_t seed, int64_t batch, int through, int64_t chunk, bool reference,
                const std::vector<std::vector<float>>& inputs, const std::vector<std::vector<int32_t>>& labels) {
  HostPool pool;
  auto m = vgg(pool, seed);
  ExecutorOptions eo;
  eo.batch = batch;
  eo.frozen = resolve_freeze_patterns(*m, {"features.*"});
  eo.reference_kernels = reference;
  eo.chunk_through = through;
  eo.chunk = chunk;
  Executor ex(*m, eo);
  OptimizerConfig oc;
  oc.kind = "adam";
  oc.lr = 1e-2f;
  Optimizer opt(oc, ex.trainable_count(), pool);
  StepsRun r;
  for (size_t s = 0; s < inputs.size(); ++s) {
    const int64_t n = int64_t(labels[s].size());
    std::copy(inputs[s].begin(), inputs[s].end(), ex.input());
    std::copy(labels[s].begin(), labels[s].end(), ex.labels());
    ex.forward(n, /*training=*/true, int64_t(s));
    ex.backward(n);
    r.losses.push_back(ex.last_batch_loss());
    opt.step(ex.trainable_segments(), oc.lr);
  }
  const float* out = ex.output();
  r.output.assign(out, out + ex.output_shape(int64_t(labels.back().size())).numel());
  r.params = params(*m);
  r.plan = ex.plan();
  return r;
}

struct Batches {
  std::vector<std::vector<float>> inputs;
  std::vector<std::vector<int32_t>> labels;
};

Batches fresh_batches(int64_t batch) {
  Batches b;
  for (int64_t n : {batch, batch, batch - 2}) {
    b.inputs.push_back(testing::random_floats(size_t(n * 32 * 32 * 3), 0.0f, 1.0f));
    b.labels.emplace_back();
    for (int64_t i = 0; i < n; ++i) b.labels.back().push_back(testing::random_int(0, 4));
  }
  return b;
}

int cut_of(MemoryPool& pool) {
  auto m = vgg(pool, 1);
  const FeatureCut c = find_feature_cut(*m, resolve_freeze_patterns(*m, {"features.*"}));
  EXPECT_EQ(m->nodes()[size_t(c.node)].name, "head.0");
  return c.node;
}

// The reference loops compute each example alone, so chunks change nothing, bit for bit:
// uneven chunks (3 + 3 + 1 of 7, then 3 + 2 of the partial batch), chunks of one, and a
// chunk as large as the batch.
TEST(FrozenChunk, SameStepsBitwiseOnReferenceKernels) {
  HostPool pool;
  const int cut = cut_of(pool);
  const uint64_t seed = testing::test_seed();
  const Batches b = fresh_batches(7);
  const StepsRun whole = three_steps(seed, 7, -1, 0, true, b.inputs, b.labels);
  for (int64_t chunk : {3, 1, 7}) {
    const StepsRun chunked = three_steps(seed, 7, cut, chunk, true, b.inputs, b.labels);
    EXPECT_TRUE(chunked.params == whole.params) << "chunk " << chunk;
    EXPECT_TRUE(chunked.output == whole.output) << "chunk " << chunk;
    EXPECT_EQ(chunked.losses, whole.losses) << "chunk " << chunk;
  }
}

// OpenBLAS may block a smaller GEMM differently: equal to float rounding.
TEST(FrozenChunk, CloseOnFastKernels) {
  HostPool pool;
  const int cut = cut_of(pool);
  const uint64_t seed = testing::test_seed();
  const Batches b = fresh_batches(9);
  const StepsRun whole = three_steps(seed, 9, -1, 0, false, b.inputs, b.labels);
  const StepsRun chunked = three_steps(seed, 9, cut, 4, false, b.inputs, b.labels);
  EXPECT_LT(testing::relative_error(chunked.output, whole.output), 1e-4);
  EXPECT_LT(testing::relative_error(chunked.params, whole.params), 1e-4);
  for (size_t s = 0; s < whole.losses.size(); ++s) EXPECT_NEAR(chunked.losses[s], whole.losses[s], 1e-4) << s;
}

// The prefix's activations are planned for one chunk: the arena shrinks with the chunk,
// and the part above the prefix (its output at the full batch, the head) stays.
TEST(FrozenChunk, ThePlanShrinksWithTheChunk) {
  HostPool pool;
  const int cut = cut_of(pool);
  const Batches b = fresh_batches(16);
  auto arena = [&](int through, int64_t chunk) {
    return three_steps(1, 16, through, chunk, false, b.inputs, b.labels).plan.arena_bytes;
  };
  const size_t whole = arena(-1, 0), by8 = arena(cut, 8), by2 = arena(cut, 2), by1 = arena(cut, 1);
  EXPECT_LT(by8, whole);
  EXPECT_LT(by2, by8);
  EXPECT_LE(by1, by2);
  // The first convolution's input and output pair dominates: 16 examples of it against 2.
  auto m = vgg(pool, 1);
  const size_t pair = prefix_pair_bytes_per_example(*m, cut);
  EXPECT_GE(whole, 16 * pair);
  std::printf("[graft] arena: whole %zu, chunks of 8 %zu, of 2 %zu, of 1 %zu; pair %zu per example\n", whole, by8, by2, by1, pair);
  EXPECT_LE(by2, 2 * pair + (whole - 16 * pair) + 4096) << "chunks of 2 should leave about 2 examples. pair";
}

TEST(FrozenChunk, RefusesWhatCannotRunInChunks) {
  HostPool pool;
  auto m = vgg(pool, 1, "flatten,dense:16,relu,dropout:0.5,dense:N");
  auto frozen = resolve_freeze_patterns(*m, {"features.*"});
  auto node = [&](const std::string& name) {
    for (int n = 0; n < m->num_nodes(); ++n)
      if (m->nodes()[size_t(n)].name == name) return n;
    ADD_FAILURE() << "no node " << name;
    return -1;
  };
  ExecutorOptions eo;
  eo.batch = 4;
  eo.frozen = frozen;
  eo.chunk = 2;
  eo.chunk_through = node("head.1");  // trainable
  std::string e = error_of([&] { Executor ex(*m, eo); });
  EXPECT_TRUE(has(e, "cannot run 'head.1' in chunks (--frozen-chunk): it needs a gradient")) << e;
  // Freeze the head's first dense layer: the dropout after it is random in training.
  eo.frozen = resolve_freeze_patterns(*m, {"features.*", "head.1"});
  eo.chunk_through = node("head.3");
  e = error_of([&] { Executor ex(*m, eo); });
  EXPECT_TRUE(has(e, "'head.3' (dropout, p 0.5) is random in training")) << e;
  // Inference has no randomness: the same chunks are fine there.
  eo.training = false;
  EXPECT_EQ(error_of([&] { Executor ex(*m, eo); }), "(no error)");

  // A residual connection across the chunk boundary.
  auto r = build_model(ModelSpec{.architecture = "resnet18", .sample_shape = Shape{32, 32, 3}, .num_classes = 4,
                                 .width_divisor = 16},
                       pool);
  ExecutorOptions ro;
  ro.batch = 4;
  ro.frozen = resolve_freeze_patterns(*r, {"conv1", "bn1", "layer1.*"});
  apply_batchnorm_policy(*r, ro.frozen, {});
  ro.chunk = 2;
  for (int n = 0; n < r->num_nodes(); ++n)
    if (r->nodes()[size_t(n)].name == "layer1.0.conv1") ro.chunk_through = n;
  e = error_of([&] { Executor ex(*r, ro); });
  EXPECT_TRUE(has(e, "in chunks (--frozen-chunk)") && has(e, "from inside them")) << e;
}

TEST(FrozenChunk, Decisions) {
  EXPECT_EQ(parse_prefix_chunk_mode("auto").kind, PrefixChunkMode::Auto);
  EXPECT_EQ(parse_prefix_chunk_mode("off").kind, PrefixChunkMode::Off);
  EXPECT_EQ(parse_prefix_chunk_mode("12").examples, 12);
  for (const char* bad : {"0", "-3", "4x", "", "many"})
    EXPECT_TRUE(has(error_of([&] { parse_prefix_chunk_mode(bad); }), "--frozen-chunk '")) << bad;

  HostPool pool;
  auto small = vgg(pool, 1);
  const auto frozen = resolve_freeze_patterns(*small, {"features.*"});
  // Small activations: auto leaves whole batches; a number is obeyed unless it is the batch.
  EXPECT_EQ(decide_prefix_chunking({PrefixChunkMode::Auto, 0}, *small, frozen, 64).through, -1);
  const PrefixChunking fixed = decide_prefix_chunking({PrefixChunkMode::Examples, 5}, *small, frozen, 64);
  EXPECT_EQ(small->nodes()[size_t(fixed.through)].name, "head.0");
  EXPECT_EQ(fixed.chunk, 5);
  EXPECT_TRUE(has(fixed.line, "frozen chunks: the layers up to 'head.0' run 5 examples at a time")) << fixed.line;
  EXPECT_EQ(decide_prefix_chunking({PrefixChunkMode::Examples, 64}, *small, frozen, 64).through, -1);
  EXPECT_EQ(decide_prefix_chunking({PrefixChunkMode::Off, 0}, *small, frozen, 64).through, -1);
  // Nothing frozen: a number is an error that says why, auto is silent.
  const std::vector<bool> none(size_t(small->num_nodes()), false);
  EXPECT_EQ(decide_prefix_chunking({PrefixChunkMode::Auto, 0}, *small, none, 64).through, -1);
  const std::string e = error_of([&] { decide_prefix_chunking({PrefixChunkMode::Examples, 4}, *small, none, 64); });
  EXPECT_TRUE(has(e, "--frozen-chunk 4: there is no frozen prefix") && has(e, "no layer is frozen")) << e;

  // vgg16 at 224 (the reference recipe): 64 x 25.7 MB of activations, so auto chunks by 16.
  auto big = build_model(ModelSpec{.architecture = "vgg16", .sample_shape = Shape{224, 224, 3}, .num_classes = 5,
                                   .head = "flatten,dense:1024,relu,dense:N"},
                         pool);
  const auto big_frozen = resolve_freeze_patterns(*big, {"features.*"});
  EXPECT_EQ(prefix_pair_bytes_per_example(*big, 0), size_t(224 * 224 * (3 + 64)) * sizeof(float));
  const PrefixChunking a = decide_prefix_chunking({PrefixChunkMode::Auto, 0}, *big, big_frozen, 64);
  EXPECT_EQ(a.chunk, 16);
  EXPECT_EQ(big->nodes()[size_t(a.through)].name, "head.0");
  EXPECT_EQ(decide_prefix_chunking({PrefixChunkMode::Auto, 0}, *big, big_frozen, 40).chunk, 14);  // 14 + 14 + 12
}

// The trainer: the same run with chunks as without (reference kernels: bitwise), and it
// says so on stderr; with the feature cache on there is no prefix in the steps to chunk.
TEST(FrozenChunk, TrainingWithChunksEqualsTrainingWithout) {
  HostPool pool;
  InMemorySource data(testing::random_dataset(21, 5, Shape{32, 32, 3}));
  const uint64_t seed = testing::test_seed();
  std::vector<std::vector<float>> result;
  std::vector<double> losses;
  for (PrefixChunkMode mode : {PrefixChunkMode{PrefixChunkMode::Off, 0}, PrefixChunkMode{PrefixChunkMode::Examples, 3}}) {
    auto m = vgg(pool, seed);
    TrainOptions o;
    o.epochs = 2;
    o.batch = 8;
    o.seed = seed % 1000;
    o.reference_kernels = true;
    o.frozen = resolve_freeze_patterns(*m, {"features.*"});
    o.cache_features = FeatureCacheMode::Off;
    o.frozen_chunk = mode;
    std::ostringstream log;
    ::testing::internal::CaptureStderr();
    const auto reports = train(*m, data, nullptr, o, log);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(has(err, "frozen chunks: the layers up to 'head.0' run 3 examples at a time"),
              mode.kind == PrefixChunkMode::Examples)
        << err;
    result.push_back(params(*m));
    losses.push_back(reports.back().train.loss_sum);
  }
  EXPECT_TRUE(result[0] == result[1]);
  EXPECT_EQ(losses[0], losses[1]);
}

}  // namespace
}  // namespace graft
