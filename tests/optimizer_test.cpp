// graft::Optimizer and the learning-rate schedules: behaviour the PyTorch fixtures
// (pytorch_parity_test.cpp) do not cover — where state comes from and how it is laid out,
// resumed step counts, validation messages, warmup — on fresh random values.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "runtime/lr_schedule.h"
#include "runtime/memory_pool.h"
#include "runtime/optimizer.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::random_floats;
using testing::random_int;

template <typename Config>
void expect_invalid(const Config& c, const std::vector<std::string>& mentions) {
  try {
    c.validate();
    ADD_FAILURE() << "validate() accepted a bad config; expected an error mentioning " << mentions.front();
  } catch (const Error& e) {
    for (const std::string& m : mentions)
      EXPECT_NE(std::string(e.what()).find(m), std::string::npos) << "'" << e.what() << "' does not mention " << m;
  }
}

OptimizerConfig config(const std::string& kind) {
  OptimizerConfig c;
  c.kind = kind;
  return c;
}

// ---------------------------------------------------------------------------------------
// State: how much, from where, zeroed, named

TEST(Optimizer, StateComesFromThePoolUnderTheOptimizerTag) {
  const int64_t count = random_int(1, 5000);
  const size_t one = HostPool::size_class(size_t(count) * sizeof(float));
  struct Case {
    OptimizerConfig c;
    size_t buffers;
    std::vector<std::string> names;
  };
  OptimizerConfig momentum = config("sgd");
  momentum.momentum = 0.9f;
  const std::vector<Case> cases = {
      {config("sgd"), 0, {}},
      {momentum, 1, {"momentum_buffer"}},
      {config("adam"), 2, {"exp_avg", "exp_avg_sq"}},
      {config("adamw"), 2, {"exp_avg", "exp_avg_sq"}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.c.kind + (k.c.momentum != 0.0f ? " with momentum" : ""));
    HostPool pool;
    {
      Optimizer opt(k.c, count, pool);
      const PoolStats s = pool.stats();
      EXPECT_EQ(s.tag("optimizer"), k.buffers * one);
      EXPECT_EQ(s.bytes_in_use, k.buffers * one) << "nothing but optimizer state is allocated";
      EXPECT_EQ(opt.state_names(), k.names);
      EXPECT_EQ(opt.state_count(), count);
      EXPECT_EQ(opt.step_count(), 0);
      for (size_t i = 0; i < k.buffers; ++i) ASSERT_NE(opt.state(i), nullptr);
      EXPECT_THROW(opt.state(k.buffers), Error);
    }
    EXPECT_EQ(pool.stats().tag("optimizer"), 0u) << "state is released with the optimizer";
  }
}

TEST(Optimizer, StateIsZeroEvenWhenThePoolReusesABlock) {
  const int64_t count = random_int(64, 4096);
  HostPool pool;
  {
    // Dirty two blocks of the right size class, then hand them back to the pool's cache.
    PoolBuffer a(pool, size_t(count) * sizeof(float), "scratch");
    PoolBuffer b(pool, size_t(count) * sizeof(float), "scratch");
    std::memset(a.get(), 0x7f, a.bytes());
    std::memset(b.get(), 0x7f, b.bytes());
  }
  const size_t allocations = pool.stats().system_allocations;
  Optimizer opt(config("adam"), count, pool);
  EXPECT_EQ(pool.stats().system_allocations, allocations) << "the cached blocks were expected to be reused";
  for (size_t s = 0; s < 2; ++s)
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(opt.state(s)[i], 0.0f) << opt.state_names()[s] << "[" << i << "]";
}

TEST(Optimizer, ZeroStateCountAllocatesNothing) {
  HostPool pool;
  Optimizer opt(config("adam"), 0, pool);
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  opt.step({}, 1e-3f);  // nothing trainable: a step is a no-op
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(Optimizer, SegmentsAreLaidOutInOrder) {
  // First Adam step with no weight decay: exp_avg = (1 - beta1) g, exp_avg_sq = (1 - beta2) g^2,
  // so the state buffers show exactly where each segment went.
  const int na = random_int(1, 40), nb = random_int(1, 40), spare = random_int(0, 10);
  std::vector<float> pa = random_floats(size_t(na)), pb = random_floats(size_t(nb));
  const std::vector<float> ga = random_floats(size_t(na)), gb = random_floats(size_t(nb));
  HostPool pool;
  OptimizerConfig c = config("adam");
  Optimizer opt(c, na + nb + spare, pool);  // room for more than is stepped (frozen params have none)
  const std::vector<ParamSegment> segments = {{"a", pa.data(), ga.data(), na}, {"b", pb.data(), gb.data(), nb}};
  opt.step(segments, 1e-2f);
  const float* m = opt.state(0);
  const float* v = opt.state(1);
  // PyTorch's 1 - beta: computed in double from the decimals 0.9 and 0.999, then rounded.
  const float b1 = float(1.0 - 0.9), b2 = float(1.0 - 0.999);
  for (int i = 0; i < na; ++i) {
    EXPECT_FLOAT_EQ(m[i], b1 * ga[size_t(i)]) << "a[" << i << "]";
    EXPECT_FLOAT_EQ(v[i], b2 * ga[size_t(i)] * ga[size_t(i)]) << "a[" << i << "]";
  }
  for (int i = 0; i < nb; ++i) {
    EXPECT_FLOAT_EQ(m[na + i], b1 * gb[size_t(i)]) << "b[" << i << "]";
    EXPECT_FLOAT_EQ(v[na + i], b2 * gb[size_t(i)] * gb[size_t(i)]) << "b[" << i << "]";
  }
  for (int i = 0; i < spare; ++i) {
    EXPECT_EQ(m[na + nb + i], 0.0f) << "state past the segments is untouched";
    EXPECT_EQ(v[na + nb + i], 0.0f) << "state past the segments is untouched";
  }
}

// Step graphs split a step in two (prepare on the host, launch on the device) and read the
// scalars from the pool's memory: the same updates as step(), bit for bit, every optimizer,
// with per-segment learning-rate factors and changing learning rates.
TEST(Optimizer, PreparedStepsWithScalarsInMemoryEqualStep) {
  for (const char* kind : {"sgd", "adam", "adamw"}) {
    SCOPED_TRACE(kind);
    OptimizerConfig c;
    c.kind = kind;
    c.momentum = std::string(kind) == "sgd" ? 0.9f : 0.0f;
    c.weight_decay = 0.01f;
    HostPool pool;
    const int64_t a = random_int(1, 50), b = random_int(1, 50);
    std::vector<float> p0 = random_floats(size_t(a + b)), g = random_floats(size_t(a + b));
    std::vector<std::vector<float>> results;
    for (bool in_memory : {false, true}) {
      std::vector<float> p = p0;
      std::vector<ParamSegment> segs{{"a", p.data(), g.data(), a, 1.0f}, {"b", p.data() + a, g.data() + a, b, 0.1f}};
      Optimizer opt(c, a + b, pool);
      opt.set_scalars_in_memory(in_memory);
      for (int t = 1; t <= 4; ++t) {
        const float lr = 0.01f / float(t);
        if (in_memory) {
          opt.prepare(segs, lr);
          opt.launch(segs);
        } else {
          opt.step(segs, lr);
        }
      }
      results.push_back(p);
    }
    EXPECT_TRUE(results[0] == results[1]);
    EXPECT_FALSE(results[0] == p0);
  }
}

TEST(Optimizer, MoreElementsThanStateIsAnError) {
  const int n = random_int(2, 50);
  std::vector<float> p = random_floats(size_t(n)), g = random_floats(size_t(n));
  const std::vector<float> before = p;
  HostPool pool;
  Optimizer opt(config("adam"), n - 1, pool);
  const std::vector<ParamSegment> segments = {{"w", p.data(), g.data(), n}};
  EXPECT_THROW(opt.step(segments, 1e-3f), Error);
  EXPECT_EQ(p, before) << "a rejected step changes nothing";
  EXPECT_EQ(opt.step_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Update semantics not in the fixtures

TEST(Optimizer, ZeroGradientAdamWShrinksByExactlyOneMinusLrTimesWeightDecay) {
  const int n = random_int(1, 300);
  std::vector<float> p = random_floats(size_t(n), -5.0f, 5.0f);
  const std::vector<float> g(size_t(n), 0.0f);
  OptimizerConfig c = config("adamw");
  c.weight_decay = 0.01f + 0.2f * random_floats(1, 0.0f, 1.0f)[0];
  const float lr = 1e-3f + 0.1f * random_floats(1, 0.0f, 1.0f)[0];
  HostPool pool;
  Optimizer opt(c, n, pool);
  const std::vector<ParamSegment> segments = {{"w", p.data(), g.data(), n}};
  for (int step = 0; step < 3; ++step) {
    const std::vector<float> before = p;
    opt.step(segments, lr);
    for (int i = 0; i < n; ++i)
      ASSERT_EQ(p[size_t(i)], before[size_t(i)] * (1.0f - lr * c.weight_decay)) << "step " << step << " [" << i << "]";
  }
}

TEST(Optimizer, ResumedStepCountDrivesBiasCorrection) {
  const int n = random_int(1, 50);
  const int64_t resumed = random_int(1, 100);
  std::vector<float> p = random_floats(size_t(n)), g = random_floats(size_t(n));
  const std::vector<float> before = p;
  OptimizerConfig c = config("adam");
  const float lr = 1e-2f;
  HostPool pool;
  Optimizer opt(c, n, pool);
  opt.set_step_count(resumed);
  opt.step(std::vector<ParamSegment>{{"w", p.data(), g.data(), n}}, lr);
  EXPECT_EQ(opt.step_count(), resumed + 1);
  const double t = double(resumed + 1), b1 = c.beta1, b2 = c.beta2;
  for (int i = 0; i < n; ++i) {
    const double gi = g[size_t(i)];
    const double m = (1 - b1) * gi, v = (1 - b2) * gi * gi;
    const double expected =
        before[size_t(i)] - lr / (1 - std::pow(b1, t)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(b2, t)) + c.eps);
    EXPECT_NEAR(p[size_t(i)], expected, 1e-6 * std::max(1.0, std::abs(expected))) << "[" << i << "]";
  }
}

TEST(Optimizer, SgdMomentumBufferStartsAsTheGradientOnlyOnTheFirstStep) {
  const int n = random_int(1, 50);
  const std::vector<float> g = random_floats(size_t(n));
  OptimizerConfig c = config("sgd");
  c.momentum = 0.9f;
  c.dampening = 0.5f;
  for (const int64_t start : {int64_t{0}, int64_t{random_int(1, 20)}}) {
    SCOPED_TRACE(start);
    std::vector<float> p = random_floats(size_t(n));
    HostPool pool;
    Optimizer opt(c, n, pool);
    opt.set_step_count(start);
    opt.step(std::vector<ParamSegment>{{"w", p.data(), g.data(), n}}, 0.1f);
    // First step: buf = g. A resumed step with a (zero) loaded buffer: buf = m*0 + (1 - dampening) g.
    for (int i = 0; i < n; ++i) {
      const float expected = start == 0 ? g[size_t(i)] : (1.0f - c.dampening) * g[size_t(i)];
      EXPECT_FLOAT_EQ(opt.state(0)[i], expected) << "[" << i << "]";
    }
  }
}

TEST(Optimizer, PlainSgdIsGradientDescentWithL2) {
  const int n = random_int(1, 100);
  std::vector<float> p = random_floats(size_t(n));
  const std::vector<float> g = random_floats(size_t(n)), before = p;
  OptimizerConfig c = config("sgd");
  c.weight_decay = 1e-2f;
  const float lr = 0.05f;
  HostPool pool;
  Optimizer opt(c, n, pool);
  EXPECT_TRUE(opt.state_names().empty());
  opt.step(std::vector<ParamSegment>{{"w", p.data(), g.data(), n}}, lr);
  for (int i = 0; i < n; ++i)
    EXPECT_FLOAT_EQ(p[size_t(i)], before[size_t(i)] - lr * (g[size_t(i)] + c.weight_decay * before[size_t(i)]));
}

// ---------------------------------------------------------------------------------------
// Validation

TEST(Optimizer, DefaultsAndGoodConfigsValidate) {
  for (const char* kind : {"sgd", "adam", "adamw"}) EXPECT_NO_THROW(config(kind).validate()) << kind;
  OptimizerConfig nesterov = config("sgd");
  nesterov.momentum = 0.9f;
  nesterov.nesterov = true;
  nesterov.weight_decay = 5e-4f;
  EXPECT_NO_THROW(nesterov.validate());
}

TEST(Optimizer, ValidationNamesTheSettingAndItsFlag) {
  OptimizerConfig c = config("rmsprop");
  expect_invalid(c, {"--optimizer", "rmsprop"});
  for (const float bad : {0.0f, -1e-3f, NAN, INFINITY}) {
    c = config("adam");
    c.lr = bad;
    expect_invalid(c, {"--lr"});
  }
  c = config("sgd");
  c.momentum = -0.1f;
  expect_invalid(c, {"--momentum"});
  for (const float bad : {-1e-4f, NAN}) {
    c = config("adamw");
    c.weight_decay = bad;
    expect_invalid(c, {"--weight-decay"});
  }
  for (const float bad : {1.0f, -0.1f, NAN}) {
    c = config("adam");
    c.beta1 = bad;
    expect_invalid(c, {"--beta1"});
    c = config("adam");
    c.beta2 = bad;
    expect_invalid(c, {"--beta2"});
  }
  for (const float bad : {0.0f, -1e-8f}) {
    c = config("adam");
    c.eps = bad;
    expect_invalid(c, {"--eps"});
  }
}

TEST(Optimizer, NesterovNeedsMomentumAndNoDampening) {
  OptimizerConfig c = config("sgd");
  c.nesterov = true;
  expect_invalid(c, {"--nesterov", "--momentum"});
  c.momentum = 0.9f;
  c.dampening = 0.1f;
  expect_invalid(c, {"--nesterov", "dampening"});
}

TEST(Optimizer, ConstructorValidates) {
  HostPool pool;
  OptimizerConfig c = config("adam");
  c.lr = -1.0f;
  EXPECT_THROW(Optimizer(c, 10, pool), Error);
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
}

// ---------------------------------------------------------------------------------------
// Learning-rate schedules

LrScheduleConfig schedule(const std::string& kind) {
  LrScheduleConfig c;
  c.kind = kind;
  c.base_lr = 1e-3f + random_floats(1, 0.0f, 1.0f)[0];
  return c;
}

TEST(LrSchedule, WarmupRampsLinearlyToTheBaseRate) {
  for (const char* kind : {"constant", "step", "cosine"}) {
    SCOPED_TRACE(kind);
    LrScheduleConfig c = schedule(kind);
    c.warmup_steps = random_int(1, 50);
    c.step_size = random_int(1, 10);
    c.total_steps = c.warmup_steps + random_int(1, 100);
    ASSERT_NO_THROW(c.validate());
    const double base = c.base_lr;
    for (int64_t s = 0; s < c.warmup_steps; ++s)
      EXPECT_NEAR(learning_rate_at(c, s), base * double(s + 1) / double(c.warmup_steps), 1e-7 * base) << s;
    // The last warmup step reaches the base rate; the schedule proper then starts from it.
    EXPECT_FLOAT_EQ(learning_rate_at(c, c.warmup_steps - 1), c.base_lr);
    EXPECT_FLOAT_EQ(learning_rate_at(c, c.warmup_steps), c.base_lr);
    // Equal increments: linear.
    if (c.warmup_steps >= 3) {
      const double d1 = double(learning_rate_at(c, 1)) - learning_rate_at(c, 0);
      const double d2 = double(learning_rate_at(c, 2)) - learning_rate_at(c, 1);
      EXPECT_NEAR(d1, d2, 1e-6 * base);
    }
  }
}

TEST(LrSchedule, ConstantIsTheBaseRateForever) {
  LrScheduleConfig c = schedule("constant");
  ASSERT_NO_THROW(c.validate());
  for (const int64_t s : {int64_t{0}, int64_t{1}, int64_t{random_int(2, 1000)}, int64_t{1} << 40})
    EXPECT_EQ(learning_rate_at(c, s), c.base_lr) << s;
}

TEST(LrSchedule, StepDecaysEveryStepSizeStepsAfterWarmup) {
  LrScheduleConfig c = schedule("step");
  c.warmup_steps = random_int(0, 10);
  c.step_size = random_int(1, 12);
  c.gamma = random_floats(1, 0.1f, 0.9f)[0];
  ASSERT_NO_THROW(c.validate());
  for (int64_t s = c.warmup_steps; s < c.warmup_steps + 5 * c.step_size; ++s) {
    const double expected = double(c.base_lr) * std::pow(double(c.gamma), double((s - c.warmup_steps) / c.step_size));
    EXPECT_NEAR(learning_rate_at(c, s), expected, 1e-6 * expected) << s;
  }
}

TEST(LrSchedule, CosineGoesFromBaseToMinAndStaysThere) {
  LrScheduleConfig c = schedule("cosine");
  c.warmup_steps = random_int(0, 10);
  c.total_steps = c.warmup_steps + 2 * random_int(1, 100);  // even span: an exact midpoint
  c.min_lr = c.base_lr * random_floats(1, 0.0f, 0.5f)[0];
  ASSERT_NO_THROW(c.validate());
  EXPECT_FLOAT_EQ(learning_rate_at(c, c.warmup_steps), c.base_lr);
  EXPECT_FLOAT_EQ(learning_rate_at(c, (c.warmup_steps + c.total_steps) / 2), 0.5f * (c.base_lr + c.min_lr));
  EXPECT_FLOAT_EQ(learning_rate_at(c, c.total_steps), c.min_lr);
  EXPECT_FLOAT_EQ(learning_rate_at(c, c.total_steps + random_int(1, 1000)), c.min_lr);
  float previous = learning_rate_at(c, c.warmup_steps);
  for (int64_t s = c.warmup_steps + 1; s <= c.total_steps; ++s) {
    const float lr = learning_rate_at(c, s);
    EXPECT_LE(lr, previous) << "cosine decay is monotone, step " << s;
    previous = lr;
  }
}

TEST(LrSchedule, ValidationNamesTheSettingAndItsFlag) {
  LrScheduleConfig c = schedule("linear-ish");
  expect_invalid(c, {"linear-ish", "--schedule"});
  c = schedule("constant");
  c.base_lr = 0.0f;
  expect_invalid(c, {"--lr"});
  c = schedule("constant");
  c.warmup_steps = -1;
  expect_invalid(c, {"--warmup-steps"});
  c = schedule("step");
  c.step_size = 0;
  expect_invalid(c, {"step size", "--step-size"});
  c = schedule("step");
  c.step_size = 3;
  c.gamma = 0.0f;
  expect_invalid(c, {"--gamma"});
  c = schedule("cosine");
  c.warmup_steps = 10;
  c.total_steps = 10;
  expect_invalid(c, {"total steps", "--epochs", "--warmup-steps"});
  c = schedule("cosine");
  c.total_steps = 10;
  c.min_lr = -1.0f;
  expect_invalid(c, {"--min-lr"});
  c = schedule("cosine");
  c.total_steps = 10;
  EXPECT_NO_THROW(c.validate());
}

}  // namespace
}  // namespace graft
