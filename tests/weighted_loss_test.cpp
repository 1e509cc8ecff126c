// Class-weighted cross-entropy: PyTorch's values (fixture from tests/golden/make_weighted_ce.py),
// unit weights equal the unweighted loss, and the gradient against finite differences.
#include "kernels/cpu/loss.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace graft {
namespace {

TEST(WeightedLoss, MatchesPyTorch) {
  const auto f = read_safetensors(std::string(GRAFT_FIXTURE_DIR) + "/golden_weighted_ce.safetensors");
  const auto logits = f.tensors.at("logits").to_floats();
  const auto weights = f.tensors.at("weights").to_floats();
  std::vector<int32_t> labels;
  for (float l : f.tensors.at("labels").to_floats()) labels.push_back(static_cast<int32_t>(l));
  const int n = static_cast<int>(labels.size()), c = static_cast<int>(weights.size());
  for (const auto& [name, s] : {std::pair<std::string, float>{"plain", 0.0f}, {"smooth", 0.2f}}) {
    double weight_sum = 0;
    for (int32_t l : labels) weight_sum += weights[size_t(l)];
    std::vector<float> grad = testing::poisoned(size_t(n * c));
    double loss = 0, seen = 0;
    cpu::softmax_cross_entropy_weighted(n, c, logits.data(), labels.data(), weights.data(), s,
                                        float(1.0 / weight_sum), grad.data(), &loss, &seen, nullptr);
    EXPECT_NEAR(seen, weight_sum, 1e-9);
    const float ours = float(loss / seen);
    const float theirs = f.tensors.at(name + ".loss").to_floats()[0];
    EXPECT_LT(testing::relative_error(&ours, &theirs, 1), 1e-5) << name;
    EXPECT_LT(testing::relative_error(grad, f.tensors.at(name + ".grad").to_floats()), 1e-5) << name;
  }
}

TEST(WeightedLoss, UnitWeightsEqualTheUnweightedLoss) {
  const int n = testing::random_int(1, 9), c = testing::random_int(2, 7);
  const auto z = testing::random_floats(size_t(n * c), -4, 4);
  std::vector<int32_t> labels;
  for (int i = 0; i < n; ++i) labels.push_back(testing::random_int(0, c - 1));
  const std::vector<float> ones(size_t(c), 1.0f);
  const float s = 0.1f;
  std::vector<float> ga(size_t(n * c)), gb(size_t(n * c));
  double la = 0, lb = 0, wa = 0, ca = 0, cb = 0;
  cpu::softmax_cross_entropy(n, c, z.data(), labels.data(), s, 1.0f / n, ga.data(), &la, &ca);
  cpu::softmax_cross_entropy_weighted(n, c, z.data(), labels.data(), ones.data(), s, 1.0f / n, gb.data(), &lb, &wa, &cb);
  EXPECT_NEAR(la, lb, 1e-9 * std::max(1.0, std::abs(la)));
  EXPECT_EQ(wa, double(n));
  EXPECT_EQ(ca, cb);
  EXPECT_LT(testing::relative_error(gb, ga), 1e-6);
}

TEST(WeightedLoss, GradientMatchesFiniteDifferences) {
  const int n = 4, c = 6;
  auto z = testing::random_floats(size_t(n * c), -3, 3);
  std::vector<int32_t> labels;
  for (int i = 0; i < n; ++i) labels.push_back(testing::random_int(0, c - 1));
  const auto w = testing::random_floats(size_t(c), 0.2f, 3.0f);
  std::vector<float> grad(size_t(n * c));
  cpu::softmax_cross_entropy_weighted(n, c, z.data(), labels.data(), w.data(), 0.15f, 1.0f, grad.data(), nullptr,
                                      nullptr, nullptr);
  const auto numeric = testing::numerical_gradient(z, [&] {
    double loss = 0;
    cpu::softmax_cross_entropy_weighted(n, c, z.data(), labels.data(), w.data(), 0.15f, 1.0f, nullptr, &loss, nullptr,
                                        nullptr);
    return loss;
  }, 1e-3f);
  testing::expect_gradient_close(grad, numeric, "weighted CE dlogits");
}

}  // namespace
}  // namespace graft
