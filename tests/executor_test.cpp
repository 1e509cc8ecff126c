// The executor from the outside: frozen-layer guarantees (pool statistics, which backward
// passes ran, bitwise parameters), the memory plan, and whole-model gradients.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "layers/zoo.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/optimizer.h"
#include "tests/testing.h"

namespace graft {
namespace {

constexpr int64_t kBatch = 6;

std::unique_ptr<Model> small_cnn(MemoryPool& pool, int classes = 4) {
  return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = classes, .seed = testing::test_seed()}, pool);
}

void fill_batch(Executor& ex, int64_t n, int classes) {
  const auto x = testing::random_floats(size_t(n * 64), 0.0f, 1.0f);
  std::copy(x.begin(), x.end(), ex.input());
  for (int64_t i = 0; i < n; ++i) ex.labels()[i] = testing::random_int(0, classes - 1);
}

std::vector<float> snapshot(const Model& m) {
  return std::vector<float>(m.param_data(0), m.param_data(0) + m.total_param_count());
}

TEST(Executor, FrozenParametersGetNoGradientBytesAndNoOptimizerState) {
  HostPool pool;
  auto m = small_cnn(pool);
  ExecutorOptions o;
  o.batch = kBatch;
  o.frozen = resolve_freeze_patterns(*m, {"conv*"});
  Executor ex(*m, o);
  int64_t trainable = 0;
  for (const auto& p : m->params())
    if (m->nodes()[p.node].name.rfind("fc", 0) == 0) trainable += p.spec.shape.numel();
  int64_t segment_total = 0;
  for (const auto& s : ex.trainable_segments()) {
    EXPECT_EQ(s.name.rfind("fc", 0), 0u) << s.name << " is frozen but has a gradient segment";
    segment_total += s.count;
  }
  EXPECT_EQ(segment_total, trainable);
  // Gradient bytes: the trainable parameters only (each tensor 64-float aligned).
  const size_t grad_bytes = pool.stats().tag("gradients");
  EXPECT_GE(grad_bytes, size_t(trainable) * sizeof(float));
  EXPECT_LT(grad_bytes, size_t(trainable + 64 * 4) * sizeof(float) + 256);
  Optimizer opt(OptimizerConfig{}, ex.trainable_count(), pool);
  EXPECT_LE(pool.stats().tag("optimizer"), 2 * grad_bytes + 512);

  HostPool pool_all;
  auto m_all = small_cnn(pool_all);
  ExecutorOptions o_all = o;
  o_all.frozen.clear();
  Executor ex_all(*m_all, o_all);
  EXPECT_GT(pool_all.stats().tag("gradients"), grad_bytes);
}

TEST(Executor, BackwardRunsOnlyWhereNeeded) {
  HostPool pool;
  auto m = small_cnn(pool);
  ExecutorOptions o;
  o.batch = kBatch;
  o.frozen = resolve_freeze_patterns(*m, {"conv*"});
  Executor ex(*m, o);
  fill_batch(ex, kBatch, 4);
  for (int step = 0; step < 3; ++step) {
    ex.forward(kBatch, true, step);
    ex.backward(kBatch);
  }
  const int fc1 = m->find_node("fc1");
  for (int n = 0; n < m->num_nodes(); ++n) {
    const bool expected = n >= fc1;
    EXPECT_EQ(ex.backward_calls()[n], expected ? 3 : 0) << m->nodes()[n].name;
  }
  // The first trainable layer above the frozen base computes its weight gradient only.
  EXPECT_TRUE(ex.decisions()[fc1].weight_grad);
  EXPECT_FALSE(ex.decisions()[fc1].input_grad[0]);
  EXPECT_TRUE(ex.decisions()[m->find_node("fc2")].input_grad[0]);

  // Freezing the head only: backward still runs through everything below it.
  ExecutorOptions o2 = o;
  o2.frozen = resolve_freeze_patterns(*m, {"fc2"});
  Executor ex2(*m, o2);
  EXPECT_FALSE(ex2.decisions()[m->find_node("fc2")].weight_grad);
  EXPECT_TRUE(ex2.decisions()[m->find_node("fc2")].needs_grad);
  EXPECT_FALSE(ex2.decisions()[m->find_node("conv1")].input_grad[0]);
}

TEST(Executor, FrozenPlanHasLowerPeakAndKeepsNoPrefixActivations) {
  HostPool frozen_pool, full_pool;
  auto mf = small_cnn(frozen_pool);
  auto mu = small_cnn(full_pool);
  ExecutorOptions of, ou;
  of.batch = ou.batch = 32;
  of.frozen = resolve_freeze_patterns(*mf, {"conv*"});
  Executor ef(*mf, of), eu(*mu, ou);
  EXPECT_LT(ef.plan().arena_bytes, eu.plan().arena_bytes);
  EXPECT_LT(frozen_pool.stats().peak_bytes_in_use, full_pool.stats().peak_bytes_in_use);
  // The frozen prefix runs like inference: its arena is no bigger than two neighbouring
  // activations plus what the head keeps.
  const auto shapes = mf->infer_shapes(32);
  size_t largest_pair = 0;
  for (size_t i = 0; i + 1 < shapes.size(); ++i)
    largest_pair = std::max(largest_pair, size_t(shapes[i].numel() + shapes[i + 1].numel()) * sizeof(float));
  EXPECT_LE(ef.plan().arena_bytes, largest_pair + 64 * 1024);
  EXPECT_LT(ef.plan().arena_bytes, ef.plan().unplanned_bytes);
}

TEST(Executor, FrozenParametersStayBitwiseIdenticalAndTrainableOnesMove) {
  HostPool pool;
  auto m = small_cnn(pool);
  ExecutorOptions o;
  o.batch = kBatch;
  o.frozen = resolve_freeze_patterns(*m, {"conv*"});
  Executor ex(*m, o);
  OptimizerConfig oc;
  oc.kind = "adamw";
  oc.weight_decay = 0.1f;  // decoupled decay would shrink frozen weights if it ever touched them
  Optimizer opt(oc, ex.trainable_count(), pool);
  const auto before = snapshot(*m);
  for (int step = 0; step < 4; ++step) {
    fill_batch(ex, kBatch, 4);
    ex.forward(kBatch, true, step);
    ex.backward(kBatch);
    opt.step(ex.trainable_segments(), 1e-2f);
  }
  for (size_t p = 0; p < m->params().size(); ++p) {
    const auto& info = m->params()[p];
    const int64_t n = info.spec.shape.numel();
    const bool same = std::memcmp(m->param_data(p), before.data() + info.offset, size_t(n) * sizeof(float)) == 0;
    if (o.frozen[info.node])
      EXPECT_TRUE(same) << info.name << " is frozen but changed";
    else
      EXPECT_FALSE(same) << info.name << " is trainable but did not change";
  }
}

TEST(Executor, NoAllocationAfterTheFirstStep) {
  HostPool pool;
  auto m = small_cnn(pool);
  ExecutorOptions o;
  o.batch = kBatch;
  Executor ex(*m, o);
  Optimizer opt(OptimizerConfig{}, ex.trainable_count(), pool);
  fill_batch(ex, kBatch, 4);
  ex.forward(kBatch, true, 0);
  ex.backward(kBatch);
  opt.step(ex.trainable_segments(), 1e-3f);
  const PoolStats first = pool.stats();
  for (int step = 1; step < 5; ++step) {
    fill_batch(ex, step % 2 ? kBatch : kBatch - 1, 4);  // a short last batch too
    const int64_t n = step % 2 ? kBatch : kBatch - 1;
    ex.forward(n, true, step);
    ex.backward(n);
    opt.step(ex.trainable_segments(), 1e-3f);
  }
  const PoolStats after = pool.stats();
  EXPECT_EQ(after.system_allocations, first.system_allocations);
  EXPECT_EQ(after.bytes_in_use, first.bytes_in_use);
  EXPECT_EQ(after.peak_bytes_in_use, first.peak_bytes_in_use);
}

// The whole model's loss gradient, as the executor computes it through the plan, against
// central differences of the loss: catches a wrong layer backward, a wrong wiring, and any
// two live tensors the planner placed on top of each other.
TEST(Executor, ModelGradientsMatchFiniteDifferences) {
  for (bool reference : {true, false}) {
    HostPool pool;
    auto m = small_cnn(pool, 3);
    ExecutorOptions o;
    o.batch = 3;
    o.reference_kernels = reference;
    Executor ex(*m, o);
    fill_batch(ex, 3, 3);
    ex.forward(3, true, 0);
    ex.backward(3);
    auto loss = [&] {
      ex.reset_metrics();
      ex.forward(3, false, 0);
      ex.accumulate_metrics(3);
      return ex.read_metrics().loss();
    };
    int checked = 0, kinks = 0;
    for (const auto& seg : ex.trainable_segments()) {
      // A handful of random entries of each parameter tensor. Where a ReLU or a max-pool
      // switches inside [x - h, x + h] the one-sided slopes disagree: such an entry is a
      // kink, not a test of the gradient, and is skipped (and counted).
      std::vector<float> analytic;
      std::vector<double> numeric;
      for (int k = 0; k < 8; ++k) {
        const int64_t i = testing::random_int(0, int(seg.count - 1));
        const float saved = seg.param[i];
        const float h = 1e-3f;
        const double mid = loss();
        seg.param[i] = saved + h;
        const double plus = loss();
        seg.param[i] = saved - h;
        const double minus = loss();
        seg.param[i] = saved;
        const double forward = (plus - mid) / h, backward = (mid - minus) / h;
        if (std::abs(forward - backward) > 1e-3 + 0.05 * std::abs(forward + backward)) {
          ++kinks;
          continue;
        }
        analytic.push_back(seg.grad[i]);
        numeric.push_back((plus - minus) / (2.0 * h));
        ++checked;
      }
      testing::expect_gradient_close(analytic, numeric, seg.name + (reference ? " (reference)" : " (fast)"), 5e-2, 2e-3);
    }
    EXPECT_GT(checked, 3 * kinks) << "too many kinks to say anything";
  }
}

TEST(Executor, FastPathMatchesReferenceKernels) {
  HostPool pool;
  auto m = small_cnn(pool, 5);
  ExecutorOptions fast, ref;
  fast.batch = ref.batch = 7;
  ref.reference_kernels = true;
  Executor ef(*m, fast), er(*m, ref);
  fill_batch(ef, 7, 5);
  std::copy(ef.input(), ef.input() + 7 * 64, er.input());
  std::copy(ef.labels(), ef.labels() + 7, er.labels());
  ef.forward(7, true, 0);
  er.forward(7, true, 0);
  EXPECT_LT(testing::relative_error(ef.output(), er.output(), 7 * 5), 1e-5);
  ef.backward(7);
  er.backward(7);
  for (size_t s = 0; s < ef.trainable_segments().size(); ++s) {
    const auto& a = ef.trainable_segments()[s];
    const auto& b = er.trainable_segments()[s];
    EXPECT_LT(testing::relative_error(a.grad, b.grad, size_t(a.count)), 1e-4) << a.name;
  }
}

// The finite check reads the whole flat gradient buffer at once: its padding between
// segments must not trip it, and a bad value in any segment is found and named.
TEST(Executor, GradientsFiniteNamesTheSegmentAndIgnoresPadding) {
  HostPool pool;
  auto m = small_cnn(pool);
  ExecutorOptions o;
  o.batch = kBatch;
  Executor ex(*m, o);
  fill_batch(ex, kBatch, 4);
  ex.forward(kBatch, true, 0);
  ex.backward(kBatch);
  std::string bad;
  EXPECT_TRUE(ex.gradients_finite(&bad));
  const auto& segs = ex.trainable_segments();
  const ParamSegment& s = segs[size_t(testing::random_int(0, int(segs.size()) - 1))];
  ex.gradients()[(s.grad - ex.gradients()) + testing::random_int(0, int(s.count) - 1)] =
      std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(ex.gradients_finite(&bad));
  EXPECT_EQ(bad, s.name);
  ex.backward(kBatch);  // overwrites every segment again
  EXPECT_TRUE(ex.gradients_finite(&bad));
}

TEST(Executor, EverythingFrozenIsAnError) {
  HostPool pool;
  auto m = small_cnn(pool);
  ExecutorOptions o;
  o.frozen = resolve_freeze_patterns(*m, {"conv*", "fc*"});
  try {
    Executor ex(*m, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing to train"), std::string::npos) << e.what();
  }
}

TEST(Executor, FreezePatternThatMatchesNothingIsAnError) {
  HostPool pool;
  auto m = small_cnn(pool);
  try {
    resolve_freeze_patterns(*m, {"conv*", "features.*"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("features.*"), std::string::npos) << what;
    EXPECT_NE(what.find("conv1, conv2, fc1, fc2"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace graft
