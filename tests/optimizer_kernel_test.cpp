// Optimizer kernels: several steps of sgd_step and adam_step against a straightforward float64
// implementation of PyTorch's documented algorithms (torch.optim.SGD, Adam, AdamW), written
// here independently of kernels/common/optimizer_math.h.
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/optimizer.h"
#include "tests/testing.h"

namespace {

using graft::math::AdamHyper;
using graft::math::SgdHyper;
using graft::math::StepScalars;
using graft::testing::kFp32Tolerance;
using graft::testing::random_floats;
using graft::testing::relative_error;

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

constexpr int kSteps = 6;
constexpr size_t kCount = 517;

// torch.optim.SGD: g = grad + wd*p; b = g (t = 1) else mu*b + (1 - dampening)*g;
// g = nesterov ? g + mu*b : b; p -= lr*g.
void check_sgd(const SgdHyper& h, float lr) {
  const std::string what = "momentum=" + std::to_string(h.momentum) + " dampening=" + std::to_string(h.dampening) +
                           " wd=" + std::to_string(h.weight_decay) + " nesterov=" + std::to_string(h.nesterov);
  auto p = random_floats(kCount);
  std::vector<float> buf(kCount, 0.0f);
  auto pd = to_double(p);
  std::vector<double> bd(kCount, 0.0);
  const double mu = h.momentum, damp = h.dampening, wd = h.weight_decay;
  for (int t = 1; t <= kSteps; ++t) {
    const auto grad = random_floats(kCount);
    StepScalars s;
    s.lr = lr;
    s.first_step = t == 1;
    graft::cpu::sgd_step(int64_t(kCount), p.data(), grad.data(), h.momentum != 0.0f ? buf.data() : nullptr, h, s);
    for (size_t i = 0; i < kCount; ++i) {
      double g = grad[i] + wd * pd[i];
      if (mu != 0) {
        bd[i] = t == 1 ? g : mu * bd[i] + (1 - damp) * g;
        g = h.nesterov ? g + mu * bd[i] : bd[i];
      }
      pd[i] -= double(lr) * g;
    }
    ASSERT_LT(relative_error(p, to_float(pd)), kFp32Tolerance) << what << " step " << t;
    if (mu != 0) {
      ASSERT_LT(relative_error(buf, to_float(bd)), kFp32Tolerance) << what << " step " << t;
    }
  }
}

TEST(OptimizerKernelTest, SgdMatchesPyTorchAlgorithm) {
  check_sgd(SgdHyper{}, 0.1f);                                // plain, no state
  check_sgd(SgdHyper{0.9f, 0.0f, 0.0f, false}, 0.05f);        // momentum
  check_sgd(SgdHyper{0.9f, 0.1f, 0.0f, false}, 0.05f);        // dampening
  check_sgd(SgdHyper{0.9f, 0.0f, 0.0f, true}, 0.05f);         // nesterov
  check_sgd(SgdHyper{0.0f, 0.0f, 0.01f, false}, 0.1f);        // weight decay, no momentum
  check_sgd(SgdHyper{0.8f, 0.0f, 5e-4f, true}, 0.01f);        // all together
}

// torch.optim.Adam / AdamW: (Adam) g += wd*p or (AdamW) p *= 1 - lr*wd; m = b1 m + (1-b1) g;
// v = b2 v + (1-b2) g^2; p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
// Betas come as the decimals a user writes (PyTorch keeps them as Python floats): the
// kernel gets them rounded to float, and 1 - beta computed in double, then rounded.
std::vector<float> run_adam(double beta1, double beta2, float eps_f, float wd_f, bool decoupled, float lr,
                            const std::vector<float>& p0, const std::vector<std::vector<float>>& grads) {
  AdamHyper h;
  h.beta1 = float(beta1);
  h.beta2 = float(beta2);
  h.one_minus_beta1 = float(1.0 - beta1);
  h.one_minus_beta2 = float(1.0 - beta2);
  h.eps = eps_f;
  h.weight_decay = wd_f;
  h.decoupled = decoupled;
  const std::string what = "wd=" + std::to_string(h.weight_decay) + " decoupled=" + std::to_string(h.decoupled);
  auto p = p0;
  std::vector<float> m(kCount, 0.0f), v(kCount, 0.0f);
  auto pd = to_double(p);
  std::vector<double> md(kCount, 0.0), vd(kCount, 0.0);
  const double b1 = beta1, b2 = beta2, eps = h.eps, wd = h.weight_decay, lrd = lr;
  for (int t = 1; t <= int(grads.size()); ++t) {
    const auto& grad = grads[size_t(t - 1)];
    StepScalars s;
    s.lr = lr;
    s.bias_correction1 = float(1.0 - std::pow(b1, t));
    s.bias_correction2_sqrt = float(std::sqrt(1.0 - std::pow(b2, t)));
    graft::cpu::adam_step(int64_t(kCount), p.data(), grad.data(), m.data(), v.data(), h, s);
    for (size_t i = 0; i < kCount; ++i) {
      double g = grad[i];
      if (h.decoupled)
        pd[i] *= 1 - lrd * wd;
      else
        g += wd * pd[i];
      md[i] = b1 * md[i] + (1 - b1) * g;
      vd[i] = b2 * vd[i] + (1 - b2) * g * g;
      const double m_hat = md[i] / (1 - std::pow(b1, t)), v_hat = vd[i] / (1 - std::pow(b2, t));
      pd[i] -= lrd * m_hat / (std::sqrt(v_hat) + eps);
    }
    EXPECT_LT(relative_error(p, to_float(pd)), kFp32Tolerance) << what << " step " << t;
    EXPECT_LT(relative_error(m, to_float(md)), kFp32Tolerance) << what << " step " << t;
    EXPECT_LT(relative_error(v, to_float(vd)), kFp32Tolerance) << what << " step " << t;
  }
  return p;
}

TEST(OptimizerKernelTest, AdamAndAdamWMatchPyTorchAlgorithm) {
  const auto p0 = random_floats(kCount, -2.0f, 2.0f);
  std::vector<std::vector<float>> grads;
  for (int t = 0; t < kSteps; ++t) grads.push_back(random_floats(kCount));
  run_adam(0.9, 0.999, 1e-8f, 0.0f, false, 1e-3f, p0, grads);
  const auto l2 = run_adam(0.9, 0.999, 1e-8f, 0.1f, false, 1e-2f, p0, grads);
  const auto adamw = run_adam(0.9, 0.999, 1e-8f, 0.1f, true, 1e-2f, p0, grads);
  run_adam(0.8, 0.99, 1e-6f, 0.0f, false, 5e-2f, p0, grads);
  // L2 and decoupled decay are different algorithms: the results must differ.
  EXPECT_GT(relative_error(l2, adamw), 1e-4);
}

TEST(OptimizerKernelTest, ZeroGradientWithoutDecayLeavesAdamParamsAlone) {
  auto p = random_floats(kCount);
  const auto p0 = p;
  const std::vector<float> g(kCount, 0.0f);
  std::vector<float> m(kCount, 0.0f), v(kCount, 0.0f);
  StepScalars s;
  s.lr = 0.1f;
  s.bias_correction1 = 0.1f;
  s.bias_correction2_sqrt = std::sqrt(0.001f);
  graft::cpu::adam_step(int64_t(kCount), p.data(), g.data(), m.data(), v.data(), AdamHyper{}, s);
  EXPECT_EQ(p, p0);
}

}  // namespace
