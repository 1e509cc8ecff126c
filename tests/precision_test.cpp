// --precision bf16 (runtime/bf16_emulation.h): every convolution and dense call multiplies
// bf16-rounded operands and nothing else changes; the executor plans its copies so steps
// allocate nothing; training keeps fp32 master weights and tracks fp32 training closely;
// and the CLI takes the flag (tf32 stays a CUDA-only mode).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "kernels/common/bf16.h"
#include "kernels/cpu/geometry.h"
#include "kernels/ops.h"
#include "layers/zoo.h"
#include "runtime/backend_registry.h"
#include "runtime/bf16_emulation.h"
#include "runtime/executor.h"
#include "runtime/optimizer.h"
#include "runtime/trainer.h"
#include "tests/graft_program.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

using testing::random_floats;

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = math::round_to_bf16(x);
  return v;
}

bool all_bf16(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return math::round_to_bf16(x) == x; });
}

// Each GEMM-shaped call gives exactly what the plain kernel gives on rounded operands, and
// (on random full-precision operands) not what it gives on the raw ones.
TEST(Bf16Emulation, ConvolutionCallsSeeRoundedOperands) {
  Ops& base = cpu_ops(/*reference=*/true);
  HostPool pool;
  Bf16EmulationOps bf16(base, pool);
  Conv2dGeometry g;
  g.n = testing::random_int(1, 3);
  g.h = testing::random_int(3, 7);
  g.w = testing::random_int(3, 7);
  g.c_in = testing::random_int(1, 5);
  g.c_out = testing::random_int(1, 6);
  g.kh = g.kw = 3;
  g.pad = 1;
  const auto x = random_floats(size_t(g.input_numel())), w = random_floats(size_t(g.weight_numel()));
  const auto bias = random_floats(size_t(g.c_out)), dy = random_floats(size_t(g.output_numel()));
  std::vector<float> ws(base.conv2d_workspace_floats(g) + 1);
  auto conv = [&](Ops& ops, const std::vector<float>& xx, const std::vector<float>& ww) {
    std::vector<float> y(size_t(g.output_numel()));
    ops.conv2d_forward(g, xx.data(), ww.data(), bias.data(), y.data(), ws.data());
    return y;
  };
  EXPECT_TRUE(conv(bf16, x, w) == conv(base, rounded(x), rounded(w)));
  EXPECT_FALSE(conv(bf16, x, w) == conv(base, x, w));

  std::vector<float> dx_e(x.size()), dx_r(x.size());
  bf16.conv2d_backward_data(g, dy.data(), w.data(), dx_e.data(), ws.data());
  base.conv2d_backward_data(g, rounded(dy).data(), rounded(w).data(), dx_r.data(), ws.data());
  EXPECT_TRUE(dx_e == dx_r);

  std::vector<float> dw_e(w.size()), dw_r(w.size()), db_e(bias.size()), db_r(bias.size());
  bf16.conv2d_backward_filter(g, x.data(), dy.data(), dw_e.data(), db_e.data(), ws.data());
  base.conv2d_backward_filter(g, rounded(x).data(), rounded(dy).data(), dw_r.data(), db_r.data(), ws.data());
  EXPECT_TRUE(dw_e == dw_r);
  EXPECT_TRUE(db_e == db_r);
  // Operands the caller owns are never touched.
  EXPECT_FALSE(all_bf16(x));
}

TEST(Bf16Emulation, DenseCallsSeeRoundedOperands) {
  Ops& base = cpu_ops(/*reference=*/false);
  HostPool pool;
  Bf16EmulationOps bf16(base, pool);
  const int n = testing::random_int(1, 9), in = testing::random_int(1, 40), out = testing::random_int(1, 12);
  const auto x = random_floats(size_t(n * in)), w = random_floats(size_t(out * in)), b = random_floats(size_t(out));
  const auto dy = random_floats(size_t(n * out));
  std::vector<float> y_e(size_t(n * out)), y_r(y_e.size());
  bf16.dense_forward(n, in, out, x.data(), w.data(), b.data(), y_e.data());
  base.dense_forward(n, in, out, rounded(x).data(), rounded(w).data(), b.data(), y_r.data());
  EXPECT_TRUE(y_e == y_r);
  std::vector<float> dx_e(x.size()), dx_r(x.size());
  bf16.dense_backward_data(n, in, out, dy.data(), w.data(), dx_e.data());
  base.dense_backward_data(n, in, out, rounded(dy).data(), rounded(w).data(), dx_r.data());
  EXPECT_TRUE(dx_e == dx_r);
  std::vector<float> dw_e(w.size()), dw_r(w.size()), db_e(b.size()), db_r(b.size());
  bf16.dense_backward_weights(n, in, out, x.data(), dy.data(), dw_e.data(), db_e.data());
  base.dense_backward_weights(n, in, out, rounded(x).data(), rounded(dy).data(), dw_r.data(), db_r.data());
  EXPECT_TRUE(dw_e == dw_r);
  EXPECT_TRUE(db_e == db_r);
}

std::unique_ptr<Model> cnn(MemoryPool& pool, uint64_t seed) {
  return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = 4,
                               .seed = seed},
                     pool);
}

// The rounded copies are planned (in the workspace) and reused: no allocation after step 1.
TEST(Bf16Emulation, StepsAllocateNothingAfterTheFirst) {
  HostPool pool;
  auto m = cnn(pool, testing::test_seed());
  ExecutorOptions o;
  o.batch = 5;
  o.bf16 = true;
  Executor ex(*m, o);
  ExecutorOptions plain = o;
  plain.bf16 = false;
  EXPECT_GT(ex.plan().workspace_bytes, Executor(*m, plain).plan().workspace_bytes);
  Optimizer opt(OptimizerConfig{}, ex.trainable_count(), pool);
  auto step = [&](int64_t n, int64_t s) {
    const auto x = random_floats(size_t(n * 64), 0.0f, 1.0f);
    std::copy(x.begin(), x.end(), ex.input());
    for (int64_t i = 0; i < n; ++i) ex.labels()[i] = testing::random_int(0, 3);
    ex.forward(n, true, s);
    ex.backward(n);
    opt.step(ex.trainable_segments(), 1e-3f);
  };
  step(5, 0);
  const PoolStats first = pool.stats();
  for (int s = 1; s < 4; ++s) step(s % 2 ? 5 : 3, s);
  EXPECT_EQ(pool.stats().system_allocations, first.system_allocations);
  EXPECT_EQ(pool.stats().peak_bytes_in_use, first.peak_bytes_in_use);
}

// Training: the master weights stay fp32 (they move by updates far below a bf16 ulp), the
// run tracks fp32 training closely (loss per epoch within 5%), and the loss goes down.
TEST(Bf16Emulation, TrainingKeepsFp32MasterWeightsAndTracksFp32) {
  HostPool pool;
  InMemorySource data(testing::random_dataset(48, 4));
  const uint64_t seed = testing::test_seed();
  std::vector<std::vector<EpochReport>> runs;
  std::vector<std::vector<float>> finals;
  for (bool bf16 : {false, true}) {
    KernelSettings s = kernel_settings();
    s.bf16 = bf16;
    set_kernel_settings(s);
    auto m = cnn(pool, seed);
    TrainOptions o;
    o.epochs = 4;
    o.batch = 8;
    o.seed = seed % 1000;
    o.optimizer.kind = "adam";
    o.optimizer.lr = 3e-3f;
    std::ostringstream log;
    runs.push_back(train(*m, data, nullptr, o, log));
    finals.push_back(testing::params(*m));
    s.bf16 = false;
    set_kernel_settings(s);
  }
  EXPECT_FALSE(all_bf16(finals[1])) << "master weights were stored as bf16";
  EXPECT_FALSE(finals[0] == finals[1]) << "bf16 changed nothing";
  for (size_t e = 0; e < runs[0].size(); ++e) {
    const double fp32 = runs[0][e].train.loss(), bf16 = runs[1][e].train.loss();
    EXPECT_NEAR(bf16, fp32, 0.05 * fp32) << "epoch " << e + 1;
  }
  EXPECT_LT(runs[1].back().train.loss(), runs[1].front().train.loss());
}

// One step's loss and gradients: bf16 operands move them by about bf16's rounding (2^-9
// relative per operand), not by nothing. The last layer's gradient stays within a few parts
// in a thousand; earlier ones move more (up to ~15% in L2 in this tiny net at init), since a
// pre-activation near zero may flip its ReLU and max pooling may route a window's gradient
// to another of near-equal inputs, as under autocast. (The exact check is per call, above;
// whole trajectories are no test: on random labels small differences grow chaotically.)
TEST(Bf16Emulation, OneStepStaysWithinBf16RoundingOfFp32) {
  HostPool pool;
  auto m = cnn(pool, testing::test_seed());
  const int64_t batch = 6;
  const auto x = random_floats(size_t(batch * 64), 0.0f, 1.0f);
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < batch; ++i) labels.push_back(testing::random_int(0, 3));
  std::vector<std::vector<float>> grads;
  std::vector<double> losses;
  std::vector<ParamSegment> segments;
  for (bool bf16 : {false, true}) {
    ExecutorOptions o;
    o.batch = batch;
    o.bf16 = bf16;
    Executor ex(*m, o);
    std::copy(x.begin(), x.end(), ex.input());
    std::copy(labels.begin(), labels.end(), ex.labels());
    ex.forward(batch, true, 0);
    ex.backward(batch);
    grads.emplace_back(ex.gradients(), ex.gradients() + ex.trainable_count());
    losses.push_back(ex.last_batch_loss());
    segments = ex.trainable_segments();
  }
  EXPECT_NE(losses[1], losses[0]);
  EXPECT_NEAR(losses[1], losses[0], 1e-3 * losses[0]);
  for (const ParamSegment& s : segments) {
    const size_t at = size_t(s.grad - segments[0].grad);
    double diff = 0, norm = 0;
    for (size_t i = at; i < at + size_t(s.count); ++i) {
      diff += (double(grads[1][i]) - grads[0][i]) * (double(grads[1][i]) - grads[0][i]);
      norm += double(grads[0][i]) * grads[0][i];
    }
    const double err = std::sqrt(diff / norm);
    EXPECT_GT(err, 0.0) << s.name;
    // The last layer's gradient is smooth in its operands; earlier ones pass ReLU and max
    // pooling, where rounding may flip a unit or a window's winner.
    EXPECT_LT(err, s.name.rfind("fc2.", 0) == 0 ? 3e-2 : 0.5) << s.name;
  }
}

TEST(PrecisionCli, TrainTakesBf16AndRefusesTf32OnTheCpu) {
  testing::TempDir dir;
  const std::string base = "train --device cpu --model fmnist_cnn --per-class 6 --classes 0,1 --epochs 1 --batch 4 "
                           "--seed " + std::to_string(testing::test_seed() % 1000);
  testing::ProgramResult r = testing::run_graft(base + " --precision bf16 --metrics " + dir.file("m.jsonl"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(testing::slurp(dir.file("m.jsonl")).find("\"loss\""), std::string::npos);
  r = testing::run_graft(base + " --precision tf32");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--precision tf32 is a CUDA tensor-core mode"), std::string::npos) << r.output;
  r = testing::run_graft(base + " --precision fp16");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--precision"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace graft
