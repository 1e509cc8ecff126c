// Losses on the device against the CPU reference: the sums (into device doubles, added to
// what is there), the correct count, the gradients, and bitwise determinism.
#include <cmath>
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/loss.h"
#include "kernels/cuda/loss.h"

namespace graft::testing {
namespace {

class LossGpu : public GpuTest {};

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-6); }

TEST_F(LossGpu, SoftmaxCrossEntropy) {
  struct Case {
    int n, classes;
  };
  for (const Case c : {Case{1, 2}, Case{32, 10}, Case{100, 1000}, Case{7, 37}, Case{1, 1}, Case{65, 33}})
    for (float smoothing : {0.0f, 0.1f}) {
      SCOPED_TRACE("n " + std::to_string(c.n) + " classes " + std::to_string(c.classes) + " smoothing " +
                   std::to_string(smoothing));
      const auto logits = random_floats(static_cast<size_t>(c.n) * c.classes, -4.0f, 4.0f);
      std::vector<int32_t> labels(static_cast<size_t>(c.n));
      for (auto& l : labels) l = random_int(0, c.classes - 1);
      const float scale = 1.0f / float(c.n);
      std::vector<float> ref_d(logits.size());
      double ref_loss = 1.5, ref_correct = 2.0;  // the sums add to what is there
      cpu::softmax_cross_entropy(c.n, c.classes, logits.data(), labels.data(), smoothing, scale, ref_d.data(),
                                 &ref_loss, &ref_correct);
      auto dz = to_device(logits);
      auto dl = to_device(labels);
      auto dd = poisoned_device(logits.size());
      auto sums = to_device(std::vector<double>{1.5, 2.0});
      cuda::softmax_cross_entropy(c.n, c.classes, dz.get(), dl.get(), smoothing, scale, dd.get(), sums.get(),
                                  sums.get() + 1, stream());
      const auto got = sums.download();
      EXPECT_LT(rel(got[0], ref_loss), kFp32Tolerance) << got[0] << " vs " << ref_loss;
      EXPECT_EQ(got[1], ref_correct);
      EXPECT_LT(relative_error(dd.download(), ref_d), kFp32Tolerance);

      // No gradient, and bitwise the same sum run to run.
      auto s1 = to_device(std::vector<double>{0.0, 0.0}), s2 = to_device(std::vector<double>{0.0, 0.0});
      cuda::softmax_cross_entropy(c.n, c.classes, dz.get(), dl.get(), smoothing, scale, nullptr, s1.get(),
                                  s1.get() + 1, stream());
      cuda::softmax_cross_entropy(c.n, c.classes, dz.get(), dl.get(), smoothing, scale, nullptr, s2.get(),
                                  s2.get() + 1, stream());
      EXPECT_EQ(s1.download(), s2.download());
    }
}

// An out-of-range label reads nothing past the logits (the bad row's index would land far
// outside the buffer) and gives that row a NaN loss and NaN gradient, as the CPU reference;
// the other rows' gradients and the correct count are the CPU's.
TEST_F(LossGpu, OutOfRangeLabelGivesNaNRowAsTheCpu) {
  for (const int classes : {3, 10, 1000}) {
    const int n = random_int(2, 40), bad_row = random_int(0, n - 1);
    const int32_t bad_labels[] = {-1, classes, classes + 1000000, -2000000000};
    const auto logits = random_floats(static_cast<size_t>(n) * classes, -4.0f, 4.0f);
    std::vector<int32_t> labels(static_cast<size_t>(n));
    for (auto& l : labels) l = random_int(0, classes - 1);
    labels[size_t(bad_row)] = bad_labels[random_int(0, 3)];
    SCOPED_TRACE("n " + std::to_string(n) + " classes " + std::to_string(classes) + " row " +
                 std::to_string(bad_row) + " label " + std::to_string(labels[size_t(bad_row)]));
    std::vector<float> ref_d(logits.size(), 7.0f);
    double ref_loss = 0, ref_correct = 0;
    cpu::softmax_cross_entropy(n, classes, logits.data(), labels.data(), 0.1f, 1.0f, ref_d.data(), &ref_loss,
                               &ref_correct);
    ASSERT_TRUE(std::isnan(ref_loss));
    auto dz = to_device(logits);
    auto dl = to_device(labels);
    auto dd = to_device(std::vector<float>(logits.size(), 7.0f));  // finite: the NaN row must be written
    auto sums = to_device(std::vector<double>{0.0, 0.0});
    cuda::softmax_cross_entropy(n, classes, dz.get(), dl.get(), 0.1f, 1.0f, dd.get(), sums.get(), sums.get() + 1,
                                stream());
    const auto got = sums.download();
    EXPECT_TRUE(std::isnan(got[0])) << got[0];
    EXPECT_EQ(got[1], ref_correct);
    const auto d = dd.download();
    for (int i = 0; i < n; ++i) {
      const size_t at = size_t(i) * size_t(classes);
      if (i == bad_row) {
        for (int j = 0; j < classes; ++j) EXPECT_TRUE(std::isnan(d[at + size_t(j)])) << j;
      } else {
        EXPECT_LT(relative_error(d.data() + at, ref_d.data() + at, size_t(classes)), kFp32Tolerance) << "row " << i;
      }
    }
  }
}

TEST_F(LossGpu, Mse) {
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{100003}}) {
    SCOPED_TRACE("count " + std::to_string(n));
    const auto p = random_floats(static_cast<size_t>(n)), t = random_floats(static_cast<size_t>(n));
    const float scale = 1.0f / float(n);
    std::vector<float> ref_d(static_cast<size_t>(n));
    double ref_loss = 0.25;
    cpu::mse(n, p.data(), t.data(), scale, ref_d.data(), &ref_loss);
    auto dp = to_device(p), dt = to_device(t);
    auto dd = poisoned_device(static_cast<size_t>(n));
    auto sum = to_device(std::vector<double>{0.25});
    cuda::mse(n, dp.get(), dt.get(), scale, dd.get(), sum.get(), stream());
    EXPECT_LT(rel(sum.download()[0], ref_loss), kFp32Tolerance);
    EXPECT_LT(relative_error(dd.download(), ref_d), kFp32Tolerance);
  }
}

}  // namespace
}  // namespace graft::testing
