// GradientReducer across real ranks (under mpirun): each rank backpropagates its own random
// batch through the same small model; after the reducer, every rank holds the sum of all
// ranks' gradients, which each rank also computes alone by running every rank's batch.
// Random bucket sizes (one float to all of them in one bucket), frozen bases and not.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "layers/zoo.h"
#include "runtime/executor.h"
#include "runtime/gradient_reducer.h"
#include "runtime/memory_pool.h"
#include "runtime/model.h"
#include "runtime/mpi/mpi_communicator.h"
#include "tests/mpi/mpi_testing.h"

namespace graft {
namespace {

using testing::shared_seed;
using testing::world;

constexpr int64_t kBatch = 5;
constexpr int kClasses = 4;

// Rank r's batch of trial t: the same on every rank that asks.
void fill_batch(Executor& ex, int rank, int trial) {
  std::mt19937_64 gen(shared_seed() * 31u + static_cast<uint64_t>(trial) * 7919u + static_cast<uint64_t>(rank));
  std::uniform_real_distribution<float> u(0, 1);
  for (int64_t i = 0; i < kBatch * 64; ++i) ex.input()[i] = u(gen);
  for (int64_t i = 0; i < kBatch; ++i) ex.labels()[i] = static_cast<int32_t>(gen() % kClasses);
}

TEST(GradientReducer, EveryRankGetsTheSumOfEveryRanksGradients) {
  std::mt19937_64 gen(shared_seed());
  for (int trial = 0; trial < 6; ++trial) {
    HostPool pool;
    auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1},
                                   .num_classes = kClasses, .seed = shared_seed() + uint64_t(trial)},
                         pool);
    ExecutorOptions o;
    o.batch = kBatch;
    o.reference_kernels = true;
    if (trial % 2) o.frozen = resolve_freeze_patterns(*m, {"conv*"});
    Executor ex(*m, o);
    const int64_t n = ex.trainable_count();
    // What the sum must be: every rank's gradients, added in rank order.
    std::vector<double> expected(size_t(n), 0.0);
    for (int r = 0; r < world().size(); ++r) {
      fill_batch(ex, r, trial);
      ex.forward(kBatch, true, 0);
      ex.backward(kBatch);
      for (int64_t i = 0; i < n; ++i) expected[size_t(i)] += ex.gradients()[i];
    }
    const size_t bucket_bytes = std::uniform_int_distribution<size_t>(4, size_t(n) * 4 + 64)(gen);
    GradientReducer reducer(world(), ex, bucket_bytes);
    ASSERT_FALSE(reducer.buckets().empty());
    // The buckets cover the gradient buffer once, from its end down.
    int64_t covered = n;
    for (const auto& b : reducer.buckets()) {
      EXPECT_EQ(b.end, covered);
      covered = b.begin;
    }
    EXPECT_EQ(covered, 0);
    fill_batch(ex, world().rank(), trial);
    reducer.begin_step();
    ex.forward(kBatch, true, 0);
    ex.backward(kBatch);
    const float scale = 1.0f / float(world().size());
    reducer.finish(scale);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_NEAR(ex.gradients()[i], expected[size_t(i)] * scale, 1e-6 * (1 + std::abs(expected[size_t(i)])))
          << "gradient " << i << " of " << n << ", buckets of " << bucket_bytes << " bytes, trial " << trial;
  }
}

}  // namespace
}  // namespace graft
