// DataParallel across real ranks (under mpirun): a step over each rank's rows of a global
// batch leaves, on every rank, the mean gradient one process computes over the whole batch:
// uneven splits, a short last batch in which some ranks have no rows, class weights, frozen
// bases. Each rank also computes the whole batch alone, from the same fresh seed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "layers/zoo.h"
#include "runtime/data_parallel.h"
#include "runtime/memory_pool.h"
#include "runtime/model.h"
#include "runtime/mpi/mpi_communicator.h"
#include "tests/mpi/mpi_testing.h"

namespace graft {
namespace {

using testing::shared_seed;
using testing::world;

constexpr int kClasses = 3;

TEST(DataParallel, EveryRankGetsTheWholeBatchsMeanGradient) {
  std::mt19937_64 gen(shared_seed());
  const int ranks = world().size();
  for (int trial = 0; trial < 8; ++trial) {
    const int64_t global = std::uniform_int_distribution<int64_t>(ranks, 3 * ranks + 2)(gen);
    // Rows of this step: a full batch, or a short last one (some ranks may have none).
    const int64_t rows = trial % 2 ? global : std::uniform_int_distribution<int64_t>(1, global)(gen);
    std::vector<float> x(static_cast<size_t>(rows) * 64);
    std::vector<int32_t> y(static_cast<size_t>(rows));
    std::uniform_real_distribution<float> u(0, 1);
    for (auto& v : x) v = u(gen);
    for (auto& l : y) l = int32_t(gen() % kClasses);
    std::vector<float> weights;
    if (trial % 3 == 2)
      for (int c = 0; c < kClasses; ++c) weights.push_back(0.25f + u(gen));

    auto model = [&](HostPool& pool) {
      return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1},
                                   .num_classes = kClasses, .seed = shared_seed() + uint64_t(trial)},
                         pool);
    };
    auto options = [&](const Model& m, int64_t batch) {
      ExecutorOptions o;
      o.batch = batch;
      o.reference_kernels = true;
      o.class_weights = weights;
      if (trial % 4 == 1) o.frozen = resolve_freeze_patterns(m, {"conv*"});
      return o;
    };
    // One process, the whole batch.
    HostPool pool_all;
    auto m_all = model(pool_all);
    Executor all(*m_all, options(*m_all, global));
    std::copy(x.begin(), x.end(), all.input());
    std::copy(y.begin(), y.end(), all.labels());
    all.forward(rows, true, 0);
    all.backward(rows);
    // This rank, its rows.
    HostPool pool;
    auto m = model(pool);
    Executor ex(*m, options(*m, DataParallel::local_batch(global, ranks)));
    DataParallel dp(world(), ex, global, std::uniform_int_distribution<size_t>(4, 4096)(gen));
    const auto [lo, hi] = dp.shard().rows(rows);
    std::copy(x.begin() + lo * 64, x.begin() + hi * 64, ex.input());
    std::copy(y.begin() + lo, y.begin() + hi, ex.labels());
    ASSERT_TRUE(dp.begin_step(hi - lo));
    if (hi > lo) {
      ex.forward(hi - lo, true, 0);
      ex.backward(hi - lo);
    }
    dp.finish_step(hi - lo);
    ASSERT_EQ(ex.trainable_count(), all.trainable_count());
    for (int64_t i = 0; i < ex.trainable_count(); ++i)
      ASSERT_NEAR(ex.gradients()[i], all.gradients()[i], 2e-5 * (1 + std::abs(all.gradients()[i])))
          << "gradient " << i << ", global batch " << global << ", rows " << rows << ", rank " << world().rank()
          << " rows [" << lo << ", " << hi << "), trial " << trial;
    // Metrics over the ranks: the whole batch's.
    const Metrics summed = dp.sum(ex.read_metrics());
    const Metrics whole = all.read_metrics();
    EXPECT_EQ(summed.count, whole.count);
    EXPECT_EQ(summed.correct, whole.correct);
  }
  // The end of an epoch: no rank has rows.
  HostPool pool;
  auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = kClasses},
                       pool);
  ExecutorOptions o;
  o.batch = 2;
  Executor ex(*m, o);
  DataParallel dp(world(), ex, 2 * ranks);
  EXPECT_FALSE(dp.begin_step(0));
}

}  // namespace
}  // namespace graft
