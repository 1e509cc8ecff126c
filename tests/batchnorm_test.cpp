// BatchNorm2d: forward against the float64 formula (batch and running statistics), the
// running-statistics update (unbiased variance), backward against central differences in
// both modes, the policies (Train, FrozenStats, Frozen), and apply_batchnorm_policy.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/batchnorm.h"
#include "layers/batchnorm.h"
#include "layers/zoo.h"
#include "base/error.h"
#include "runtime/model.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::random_floats;
using testing::relative_error;

// One BN layer with its parameters and buffers, run directly through the Layer contract.
struct BnRig {
  int c;
  Shape shape;
  BatchNorm2d layer;
  std::vector<float> gamma, beta, rmean, rvar, tracked;
  std::vector<float> workspace;
  ExecContext ctx;

  BnRig(Shape s, BnPolicy policy)
      : c(int(s[s.rank() - 1])), shape(std::move(s)), layer("bn", c),
        gamma(random_floats(size_t(c), 0.5f, 1.5f)), beta(random_floats(size_t(c), -0.5f, 0.5f)),
        rmean(random_floats(size_t(c), -0.3f, 0.3f)), rvar(random_floats(size_t(c), 0.5f, 1.5f)), tracked{3.0f},
        workspace(layer.workspace_floats({shape})) {
    layer.set_policy(policy);
  }
  std::vector<float*> params() { return {gamma.data(), beta.data(), rmean.data(), rvar.data(), tracked.data()}; }

  std::vector<float> forward(const std::vector<float>& x, bool training) {
    ctx.training = training;
    std::vector<float> y = testing::poisoned(x.size());
    ForwardArgs a;
    a.ctx = &ctx;
    a.inputs = {x.data()};
    a.input_shapes = {shape};
    a.output = y.data();
    a.output_shape = shape;
    a.params = params();
    a.workspace = workspace.data();
    layer.forward(a);
    return y;
  }
  // Gradients of sum(r * y) for the last forward's mode.
  void backward(const std::vector<float>& x, const std::vector<float>& r, bool training, std::vector<float>* dx,
                std::vector<float>* dgamma, std::vector<float>* dbeta) {
    ctx.training = training;
    BackwardArgs a;
    a.ctx = &ctx;
    a.inputs = {x.data()};
    a.input_shapes = {shape};
    a.output_shape = shape;
    a.doutput = r.data();
    if (dx) *dx = testing::poisoned(x.size());
    if (dgamma) *dgamma = testing::poisoned(size_t(c));
    if (dbeta) *dbeta = testing::poisoned(size_t(c));
    a.dinputs = {dx ? dx->data() : nullptr};
    for (float* p : params()) a.params.push_back(p);
    a.dparams = {dgamma ? dgamma->data() : nullptr, dbeta ? dbeta->data() : nullptr, nullptr, nullptr, nullptr};
    a.workspace = workspace.data();
    layer.backward(a);
  }
};

struct Stats {
  std::vector<double> mean, var;  // biased
};
Stats float64_stats(const std::vector<float>& x, int c) {
  const size_t rows = x.size() / size_t(c);
  Stats s{std::vector<double>(size_t(c), 0.0), std::vector<double>(size_t(c), 0.0)};
  for (size_t r = 0; r < rows; ++r)
    for (int ch = 0; ch < c; ++ch) s.mean[ch] += x[r * c + ch];
  for (auto& m : s.mean) m /= double(rows);
  for (size_t r = 0; r < rows; ++r)
    for (int ch = 0; ch < c; ++ch) s.var[ch] += std::pow(x[r * c + ch] - s.mean[ch], 2);
  for (auto& v : s.var) v /= double(rows);
  return s;
}
std::vector<float> float64_normalize(const std::vector<float>& x, int c, const std::vector<double>& mean,
                                     const std::vector<double>& var, const std::vector<float>& g,
                                     const std::vector<float>& b) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t ch = i % size_t(c);
    y[i] = float((x[i] - mean[ch]) / std::sqrt(var[ch] + 1e-5) * g[ch] + b[ch]);
  }
  return y;
}
std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

TEST(BatchNorm, TrainForwardMatchesFloat64FormulaAndUpdatesRunningStats) {
  for (Shape s : {Shape{3, 4, 5, 6}, Shape{7, 5}}) {
    BnRig bn(s, BnPolicy::Train);
    const auto x = random_floats(size_t(s.numel()), -2.0f, 3.0f);
    const auto rmean0 = bn.rmean, rvar0 = bn.rvar;
    const auto y = bn.forward(x, true);
    const Stats st = float64_stats(x, bn.c);
    EXPECT_LT(relative_error(y, float64_normalize(x, bn.c, st.mean, st.var, bn.gamma, bn.beta)), testing::kFp32Tolerance)
        << s.str();
    const double rows = double(s.numel() / bn.c);
    std::vector<float> want_mean(size_t(bn.c)), want_var(size_t(bn.c));
    for (int ch = 0; ch < bn.c; ++ch) {
      want_mean[ch] = float(0.9 * rmean0[ch] + 0.1 * st.mean[ch]);
      want_var[ch] = float(0.9 * rvar0[ch] + 0.1 * st.var[ch] * rows / (rows - 1.0));  // unbiased
    }
    EXPECT_LT(relative_error(bn.rmean, want_mean), 1e-6);
    EXPECT_LT(relative_error(bn.rvar, want_var), 1e-6);
    EXPECT_EQ(bn.tracked[0], 4.0f);
  }
}

TEST(BatchNorm, EvalAndFrozenPoliciesUseRunningStatsAndLeaveThemAlone) {
  struct Case {
    BnPolicy policy;
    bool training;
  };
  for (Case k : {Case{BnPolicy::Train, false}, Case{BnPolicy::FrozenStats, true}, Case{BnPolicy::FrozenStats, false},
                 Case{BnPolicy::Frozen, true}, Case{BnPolicy::Frozen, false}}) {
    BnRig bn(Shape{2, 3, 3, 4}, k.policy);
    const auto x = random_floats(72, -2.0f, 2.0f);
    const auto buffers = std::vector<std::vector<float>>{bn.rmean, bn.rvar, bn.tracked};
    const auto y = bn.forward(x, k.training);
    const auto want = float64_normalize(x, bn.c, to_double(bn.rmean), to_double(bn.rvar), bn.gamma, bn.beta);
    EXPECT_LT(relative_error(y, want), testing::kFp32Tolerance) << bn_policy_name(k.policy) << " " << k.training;
    // Bitwise: never touched.
    EXPECT_EQ(std::memcmp(bn.rmean.data(), buffers[0].data(), 16), 0) << bn_policy_name(k.policy);
    EXPECT_EQ(std::memcmp(bn.rvar.data(), buffers[1].data(), 16), 0) << bn_policy_name(k.policy);
    EXPECT_EQ(bn.tracked[0], buffers[2][0]);
  }
}

// d sum(r * y) / d{x, gamma, beta} against central differences, in batch and running mode.
void check_backward(BnPolicy policy, bool training) {
  BnRig bn(Shape{2, 3, 2, 3}, policy);
  auto x = random_floats(36, -2.0f, 2.0f);
  const auto r = random_floats(36);
  const auto rmean = bn.rmean, rvar = bn.rvar;
  auto f = [&] {
    bn.rmean = rmean;  // keep the reference statistics fixed for the running-mode checks
    bn.rvar = rvar;
    return testing::dot(bn.forward(x, training), r);
  };
  const std::string what = std::string(bn_policy_name(policy)) + (training ? " training" : " eval");
  f();
  std::vector<float> dx, dgamma, dbeta;
  bn.backward(x, r, training, &dx, &dgamma, &dbeta);
  testing::expect_gradient_close(dx, testing::numerical_gradient(x, f, 1e-2f), "dx " + what);
  testing::expect_gradient_close(dgamma, testing::numerical_gradient(bn.gamma, f, 1e-2f), "dgamma " + what);
  testing::expect_gradient_close(dbeta, testing::numerical_gradient(bn.beta, f, 1e-2f), "dbeta " + what);
  // Only the input gradient (a frozen BN above trainable layers), and only weights.
  std::vector<float> dx_only;
  bn.backward(x, r, training, &dx_only, nullptr, nullptr);
  EXPECT_EQ(dx_only, dx) << what;
  std::vector<float> dg_only, db_only;
  bn.backward(x, r, training, nullptr, &dg_only, &db_only);
  EXPECT_EQ(dg_only, dgamma) << what;
  EXPECT_EQ(db_only, dbeta) << what;
}

TEST(BatchNorm, BatchStatisticsBackwardMatchesFiniteDifferences) { check_backward(BnPolicy::Train, true); }

TEST(BatchNorm, RunningStatisticsBackwardMatchesFiniteDifferences) {
  check_backward(BnPolicy::Train, false);
  check_backward(BnPolicy::FrozenStats, true);
  check_backward(BnPolicy::Frozen, true);
}

TEST(BatchNorm, TrainingOnOneValuePerChannelIsAnErrorNamingTheLayer) {
  BnRig bn(Shape{1, 4}, BnPolicy::Train);
  const auto x = random_floats(4);
  try {
    bn.forward(x, true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer bn"), std::string::npos) << e.what();
  }
  bn.layer.set_policy(BnPolicy::FrozenStats);
  EXPECT_NO_THROW(bn.forward(x, true));
}

// The kernels themselves on one value per channel (the layer refuses first, above): batch
// statistics give mean = x and variance 0, so y = beta, dx = 0, dgamma = 0, dbeta = dy, and
// nothing divides by zero; updating the running statistics (the unbiased variance divides
// by rows - 1) is an error that leaves them as they were. tests/gpu/batchnorm_test.cpp holds
// the CUDA kernels to the same.
TEST(BatchNorm, KernelsOnOneValuePerChannelDefineTheirResult) {
  const int c = testing::random_int(1, 40);
  const float eps = 1e-5f;
  const auto x = random_floats(size_t(c), -3.0f, 3.0f), gamma = random_floats(size_t(c), 0.5f, 2.0f);
  const auto beta = random_floats(size_t(c)), dy = random_floats(size_t(c));
  std::vector<double> scratch(size_t(c) * cpu::kBatchNormScratchDoubles);
  auto y = testing::poisoned(size_t(c));
  cpu::batchnorm_forward_batch(1, c, eps, 0.1f, x.data(), gamma.data(), beta.data(), y.data(), nullptr, nullptr,
                               scratch.data());
  EXPECT_LT(relative_error(y, beta), 1e-6);

  auto rmean = random_floats(size_t(c)), rvar = random_floats(size_t(c), 0.5f, 2.0f);
  const auto rmean0 = rmean, rvar0 = rvar;
  testing::expect_error([&] {
    cpu::batchnorm_forward_batch(1, c, eps, 0.1f, x.data(), gamma.data(), beta.data(), y.data(), rmean.data(),
                                 rvar.data(), scratch.data());
  }, {"more than 1 value per channel", "got 1 row"});
  EXPECT_EQ(rmean, rmean0);
  EXPECT_EQ(rvar, rvar0);

  auto dx = testing::poisoned(size_t(c)), dgamma = testing::poisoned(size_t(c)), dbeta = testing::poisoned(size_t(c));
  cpu::batchnorm_backward_batch(1, c, eps, x.data(), dy.data(), gamma.data(), dx.data(), dgamma.data(), dbeta.data(),
                                scratch.data());
  for (int ch = 0; ch < c; ++ch) {
    EXPECT_EQ(dx[size_t(ch)], 0.0f) << ch;
    EXPECT_EQ(dgamma[size_t(ch)], 0.0f) << ch;
  }
  EXPECT_EQ(dbeta, dy);
}

TEST(BatchNorm, ParamsAndBuffersHaveTorchvisionNamesAndInits) {
  BatchNorm2d bn("layer1.0.bn1", 8);
  const auto specs = bn.param_specs();
  ASSERT_EQ(specs.size(), 5u);
  const char* names[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
  const ParamInit inits[] = {ParamInit::Ones, ParamInit::Zeros, ParamInit::Zeros, ParamInit::Ones, ParamInit::Zeros};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(specs[i].name, names[i]);
    EXPECT_EQ(specs[i].init, inits[i]) << names[i];
    EXPECT_EQ(specs[i].buffer, i >= 2) << names[i];
  }
  EXPECT_EQ(specs[4].checkpoint_shape, Shape{});
  EXPECT_EQ(specs[0].shape, Shape{8});
}

TEST(BatchNorm, ParsePolicy) {
  EXPECT_EQ(parse_bn_policy("train"), BnPolicy::Train);
  EXPECT_EQ(parse_bn_policy("frozen-stats"), BnPolicy::FrozenStats);
  EXPECT_EQ(parse_bn_policy("frozen"), BnPolicy::Frozen);
  try {
    parse_bn_policy("eval");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'eval'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("frozen-stats"), std::string::npos) << msg;
  }
}

TEST(BatchNorm, ApplyPolicyDefaultsFromFreezingAndOverridesWin) {
  HostPool pool;
  ModelSpec spec{"resnet18", Shape{16, 16, 3}, 4, testing::test_seed()};
  spec.width_divisor = 16;
  auto m = build_model(spec, pool);
  auto policy = [&](const std::string& node) {
    return dynamic_cast<const BatchNorm2d&>(*m->nodes()[m->find_node(node)].layer).policy();
  };
  const auto frozen = resolve_freeze_patterns(*m, {"conv1", "bn1", "layer1.*", "layer2.*"});
  apply_batchnorm_policy(*m, frozen, {});
  EXPECT_EQ(policy("bn1"), BnPolicy::Frozen);
  EXPECT_EQ(policy("layer2.0.downsample.1"), BnPolicy::Frozen);
  EXPECT_EQ(policy("layer3.0.bn1"), BnPolicy::Train);
  apply_batchnorm_policy(*m, frozen, {{"layer3.*", BnPolicy::FrozenStats}, {"layer3.1.bn2", BnPolicy::Train},
                                      {"bn1", BnPolicy::Train}});
  EXPECT_EQ(policy("layer3.0.bn1"), BnPolicy::FrozenStats);
  EXPECT_EQ(policy("layer3.1.bn2"), BnPolicy::Train);  // later override wins
  EXPECT_EQ(policy("bn1"), BnPolicy::Train);
  EXPECT_EQ(policy("layer4.0.bn1"), BnPolicy::Train);
  apply_batchnorm_policy(*m, {}, {});
  EXPECT_EQ(policy("bn1"), BnPolicy::Train);
  try {
    apply_batchnorm_policy(*m, frozen, {{"features.*", BnPolicy::Frozen}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'features.*'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("layer1.0.bn1"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace graft
