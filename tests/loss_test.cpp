// Losses: softmax cross-entropy (with and without label smoothing) against a float64 formula
// written here, its gradient against central finite differences, stability on huge logits, the
// accumulators (loss sum, correct count with first-max argmax); MSE likewise.
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/loss.h"
#include "kernels/ops.h"
#include "tests/testing.h"

namespace {

using graft::testing::expect_gradient_close;
using graft::testing::numerical_gradient;
using graft::testing::poisoned;
using graft::testing::random_floats;
using graft::testing::random_int;
using graft::testing::relative_error;

std::vector<int32_t> random_labels(int n, int classes) {
  std::vector<int32_t> l(static_cast<size_t>(n));
  for (auto& v : l) v = random_int(0, classes - 1);
  return l;
}

struct CeFormula {
  double loss = 0;
  std::vector<float> dlogits;
};

// Straight from the definition: p = exp(z) / sum exp(z), t = (1 - s) onehot + s / C,
// loss = -sum_j t_j log p_j, dloss/dz = p - t.
CeFormula ce_formula(int n, int classes, const std::vector<float>& z, const std::vector<int32_t>& labels, double s,
                     double grad_scale) {
  CeFormula out;
  for (int i = 0; i < n; ++i) {
    double denom = 0;
    for (int j = 0; j < classes; ++j) denom += std::exp(double(z[size_t(i) * classes + j]));
    for (int j = 0; j < classes; ++j) {
      const double p = std::exp(double(z[size_t(i) * classes + j])) / denom;
      const double t = (1 - s) * (j == labels[size_t(i)] ? 1.0 : 0.0) + s / classes;
      out.loss -= t * std::log(p);
      out.dlogits.push_back(float((p - t) * grad_scale));
    }
  }
  return out;
}

struct CeCase {
  int n, classes;
  float smoothing;
};
const std::vector<CeCase> kCases = {{1, 2, 0.0f}, {4, 10, 0.0f}, {3, 7, 0.1f}, {8, 5, 0.3f}, {2, 1000, 0.0f}, {5, 3, 1.0f}};

TEST(LossTest, CrossEntropyMatchesFloat64Formula) {
  for (const auto& c : kCases) {
    const auto z = random_floats(size_t(c.n) * c.classes, -4.0f, 4.0f);
    const auto labels = random_labels(c.n, c.classes);
    const float grad_scale = 1.0f / float(c.n);
    const auto want = ce_formula(c.n, c.classes, z, labels, c.smoothing, grad_scale);
    auto d = poisoned(z.size());
    double loss_sum = 0, correct = 0;
    graft::cpu::softmax_cross_entropy(c.n, c.classes, z.data(), labels.data(), c.smoothing, grad_scale, d.data(),
                                      &loss_sum, &correct);
    EXPECT_NEAR(loss_sum, want.loss, 1e-6 * std::max(1.0, std::abs(want.loss))) << c.n << "x" << c.classes;
    EXPECT_LT(relative_error(d, want.dlogits), 1e-5) << c.n << "x" << c.classes << " s=" << c.smoothing;
  }
}

TEST(LossTest, CrossEntropyGradientMatchesFiniteDifferences) {
  for (const auto& c : kCases) {
    if (c.classes > 50) continue;  // keep finite differences small
    auto z = random_floats(size_t(c.n) * c.classes, -3.0f, 3.0f);
    const auto labels = random_labels(c.n, c.classes);
    const float grad_scale = 1.0f / float(c.n);
    auto d = poisoned(z.size());
    graft::cpu::softmax_cross_entropy(c.n, c.classes, z.data(), labels.data(), c.smoothing, grad_scale, d.data(),
                                      nullptr, nullptr);
    const auto mean_loss = [&] {
      double sum = 0;
      graft::cpu::softmax_cross_entropy(c.n, c.classes, z.data(), labels.data(), c.smoothing, grad_scale, nullptr,
                                        &sum, nullptr);
      return sum * grad_scale;
    };
    expect_gradient_close(d, numerical_gradient(z, mean_loss), "CE dlogits");
  }
}

TEST(LossTest, CrossEntropyIsStableOnHugeLogits) {
  const int n = 4, classes = 6;
  const auto z = random_floats(size_t(n) * classes, -3.0f, 3.0f);
  const auto labels = random_labels(n, classes);
  for (float shift : {1000.0f, -1000.0f, 80.0f}) {
    // Softmax and the loss are invariant to shifting a row.
    std::vector<float> zs = z;
    for (auto& v : zs) v += shift;
    auto d = poisoned(z.size()), d_shift = poisoned(z.size());
    double loss = 0, loss_shift = 0;
    graft::cpu::softmax_cross_entropy(n, classes, z.data(), labels.data(), 0.1f, 1.0f, d.data(), &loss, nullptr);
    graft::cpu::softmax_cross_entropy(n, classes, zs.data(), labels.data(), 0.1f, 1.0f, d_shift.data(), &loss_shift,
                                      nullptr);
    ASSERT_TRUE(std::isfinite(loss_shift));
    // Shifted float logits lose low bits (|z| ~ 1000 has ulp 6e-5): compare loosely.
    EXPECT_NEAR(loss_shift, loss, 1e-3 * n) << shift;
    EXPECT_LT(relative_error(d_shift, d), 1e-3) << shift;
  }
  // One logit far above the rest: loss ~ 0 for that label, gradient finite.
  const std::vector<float> row = {0.0f, 500.0f, -500.0f};
  const std::vector<int32_t> label = {1};
  auto d = poisoned(3);
  double loss = 0;
  graft::cpu::softmax_cross_entropy(1, 3, row.data(), label.data(), 0.0f, 1.0f, d.data(), &loss, nullptr);
  EXPECT_NEAR(loss, 0.0, 1e-12);
  for (float v : d) EXPECT_NEAR(v, 0.0f, 1e-12);
}

TEST(LossTest, CrossEntropyAccumulatesLossAndCorrect) {
  const int classes = 4;
  // Row 0: argmax 2; row 1: argmax 0; row 2: all equal (first max, class 0, wins);
  // row 3: tie between 1 and 3 (1 wins).
  const std::vector<float> z = {0.1f, 0.2f, 0.9f, 0.3f,   //
                                2.0f, -1.f, 0.0f, 1.0f,   //
                                0.5f, 0.5f, 0.5f, 0.5f,   //
                                0.0f, 3.0f, -2.f, 3.0f};
  const std::vector<int32_t> hit = {2, 0, 0, 1}, miss = {1, 3, 2, 3};
  double loss_sum = 10.0, correct = 7.0;  // accumulators add on top of what they hold
  graft::cpu::softmax_cross_entropy(4, classes, z.data(), hit.data(), 0.0f, 1.0f, nullptr, &loss_sum, &correct);
  EXPECT_EQ(correct, 11.0);
  const double first_loss = loss_sum - 10.0;
  EXPECT_NEAR(first_loss, ce_formula(4, classes, z, hit, 0.0, 1.0).loss, 1e-9);
  graft::cpu::softmax_cross_entropy(4, classes, z.data(), miss.data(), 0.0f, 1.0f, nullptr, &loss_sum, &correct);
  EXPECT_EQ(correct, 11.0);
  EXPECT_NEAR(loss_sum - 10.0 - first_loss, ce_formula(4, classes, z, miss, 0.0, 1.0).loss, 1e-9);
  // Uniform row: loss is log(C) whatever the smoothing.
  double uniform = 0;
  graft::cpu::softmax_cross_entropy(1, classes, z.data() + 8, hit.data() + 2, 0.2f, 1.0f, nullptr, &uniform, nullptr);
  EXPECT_NEAR(uniform, std::log(4.0), 1e-9);
}

// A label outside [0, classes) is never an index: that row's loss and gradient row are NaN
// (so the NaN guard sees them) and it is not counted correct; the other rows are as alone.
TEST(LossTest, CrossEntropyOutOfRangeLabelGivesNaNRowWithoutReadingPastTheLogits) {
  for (const auto& c : kCases) {
    if (c.n < 2) continue;
    const auto z = random_floats(size_t(c.n) * c.classes, -4.0f, 4.0f);
    auto labels = random_labels(c.n, c.classes);
    const int bad_row = random_int(0, c.n - 1);
    const int32_t bad_labels[] = {-1, c.classes, c.classes + 1000000, -2000000000};
    labels[size_t(bad_row)] = bad_labels[random_int(0, 3)];
    SCOPED_TRACE(::testing::Message() << c.n << "x" << c.classes << " row " << bad_row << " label "
                                      << labels[size_t(bad_row)]);
    std::vector<float> d(z.size(), 7.0f);  // finite: the bad row's NaN must be written
    double loss_sum = 0, correct = 0;
    graft::cpu::softmax_cross_entropy(c.n, c.classes, z.data(), labels.data(), c.smoothing, 1.0f, d.data(),
                                      &loss_sum, &correct);
    EXPECT_TRUE(std::isnan(loss_sum));
    // The good rows, one at a time, against the formula; the bad row all NaN.
    double good_correct = 0;
    for (int i = 0; i < c.n; ++i) {
      const std::vector<float> row(z.begin() + ptrdiff_t(i) * c.classes, z.begin() + ptrdiff_t(i + 1) * c.classes);
      const std::vector<float> got(d.begin() + ptrdiff_t(i) * c.classes, d.begin() + ptrdiff_t(i + 1) * c.classes);
      if (i == bad_row) {
        for (float v : got) EXPECT_TRUE(std::isnan(v));
        continue;
      }
      const std::vector<int32_t> one = {labels[size_t(i)]};
      EXPECT_LT(relative_error(got, ce_formula(1, c.classes, row, one, c.smoothing, 1.0).dlogits), 1e-5) << i;
      graft::cpu::softmax_cross_entropy(1, c.classes, row.data(), one.data(), c.smoothing, 1.0f, nullptr, nullptr,
                                        &good_correct);
    }
    EXPECT_EQ(correct, good_correct);

    std::vector<float> weights = random_floats(size_t(c.classes), 0.5f, 2.0f);
    std::vector<float> dw(z.size(), 7.0f);
    double wloss = 0, wsum = 0, wcorrect = 0;
    graft::cpu::softmax_cross_entropy_weighted(c.n, c.classes, z.data(), labels.data(), weights.data(), c.smoothing,
                                               1.0f, dw.data(), &wloss, &wsum, &wcorrect);
    EXPECT_TRUE(std::isnan(wloss));
    EXPECT_TRUE(std::isnan(wsum));
    EXPECT_EQ(wcorrect, good_correct);
    for (int j = 0; j < c.classes; ++j) EXPECT_TRUE(std::isnan(dw[size_t(bad_row) * c.classes + j]));
  }
}

TEST(LossTest, MseMatchesFormulaAndFiniteDifferences) {
  for (int64_t count : {1, 7, 1000}) {
    auto p = random_floats(size_t(count)), t = random_floats(size_t(count));
    const float grad_scale = 1.0f / float(count);
    double want = 0;
    std::vector<float> want_d;
    for (int64_t i = 0; i < count; ++i) {
      const double diff = double(p[size_t(i)]) - t[size_t(i)];
      want += diff * diff;
      want_d.push_back(float(2 * diff * grad_scale));
    }
    double loss_sum = 1.5;
    auto d = poisoned(size_t(count));
    graft::cpu::mse(count, p.data(), t.data(), grad_scale, d.data(), &loss_sum);
    EXPECT_NEAR(loss_sum - 1.5, want, 1e-9 * std::max(1.0, want));
    EXPECT_LT(relative_error(d, want_d), 1e-6);
    graft::cpu::mse(count, p.data(), t.data(), grad_scale, nullptr, nullptr);  // both nullable
    if (count <= 7) {
      expect_gradient_close(d, numerical_gradient(p, [&] {
                              double s = 0;
                              graft::cpu::mse(count, p.data(), t.data(), grad_scale, nullptr, &s);
                              return s * grad_scale;
                            }),
                            "mse dpred");
    }
  }
}

}  // namespace

namespace graft {
namespace {

// One-hot targets (the MSE loss's): a label outside the classes gives a NaN row, never an
// index, as the CUDA kernel does (gpu/loss_test compares them).
TEST(LossTest, OneHotOutOfRangeLabelGivesANaNRowAndWritesNothingElse) {
  const int n = testing::random_int(2, 9), classes = testing::random_int(2, 12);
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (auto& l : labels) l = testing::random_int(0, classes - 1);
  const int bad_row = testing::random_int(0, n - 1);
  labels[size_t(bad_row)] = testing::random_int(0, 1) ? classes + testing::random_int(0, 3) : -1;
  std::vector<float> targets(size_t(n * classes) + 8, 7.0f);  // 8 guard floats past the end
  cpu_ops(false).one_hot(n, classes, labels.data(), targets.data());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < classes; ++j) {
      const float t = targets[size_t(i * classes + j)];
      if (i == bad_row) EXPECT_TRUE(std::isnan(t)) << "row " << i << " class " << j;
      else EXPECT_EQ(t, j == labels[size_t(i)] ? 1.0f : 0.0f) << "row " << i << " class " << j;
    }
  for (size_t k = size_t(n * classes); k < targets.size(); ++k) EXPECT_EQ(targets[k], 7.0f) << "wrote past the end";
}

}  // namespace
}  // namespace graft
