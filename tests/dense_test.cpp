// Dense layer: the reference against a float64 formula, the sgemm fast path against the
// reference, and the backward passes against central finite differences.
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/dense.h"
#include "tests/testing.h"

namespace {

using graft::testing::dot;
using graft::testing::expect_gradient_close;
using graft::testing::kFp32Tolerance;
using graft::testing::numerical_gradient;
using graft::testing::poisoned;
using graft::testing::random_floats;
using graft::testing::relative_error;

using Shape = std::array<int, 3>;  // n, in, out

std::string describe(const Shape& s) {
  return "n=" + std::to_string(s[0]) + " in=" + std::to_string(s[1]) + " out=" + std::to_string(s[2]);
}

// The largest single term |x w| or |bias| of the forward sums: the floor of the relative error, so
// that an output which cancels to nearly zero (n = in = out = 1 with a bias) is judged against
// the size of what was summed.
double term_scale(const std::vector<float>& x, const std::vector<float>& w, const float* bias, int out) {
  double xmax = 0, wmax = 0, s = 1e-6;
  for (float v : x) xmax = std::max(xmax, double(std::abs(v)));
  for (float v : w) wmax = std::max(wmax, double(std::abs(v)));
  for (int o = 0; bias && o < out; ++o) s = std::max(s, double(std::abs(bias[o])));
  return std::max(s, xmax * wmax);
}

const std::vector<Shape> kSmall = {{1, 1, 1}, {3, 7, 5}, {4, 17, 9}, {1, 6, 2}, {5, 2, 11}};
const std::vector<Shape> kFast = {{1, 1, 1}, {3, 7, 5}, {4, 17, 9}, {32, 300, 70}, {1, 513, 10}, {33, 64, 1}};

TEST(DenseTest, ForwardReferenceMatchesFloat64Formula) {
  for (const auto& s : kSmall) {
    const auto [n, in, out] = s;
    const auto x = random_floats(size_t(n) * in), w = random_floats(size_t(out) * in), b = random_floats(size_t(out));
    for (const float* bias : {b.data(), static_cast<const float*>(nullptr)}) {
      std::vector<float> want;
      for (int i = 0; i < n; ++i)
        for (int o = 0; o < out; ++o) {
          double acc = bias ? bias[o] : 0.0;
          for (int k = 0; k < in; ++k) acc += double(x[size_t(i) * in + k]) * w[size_t(o) * in + k];
          want.push_back(float(acc));
        }
      auto y = poisoned(size_t(n) * out);
      graft::cpu::dense_forward_reference(n, in, out, x.data(), w.data(), bias, y.data());
      EXPECT_LT(relative_error(y, want), 1e-6) << describe(s);
    }
  }
}

TEST(DenseTest, FastMatchesReference) {
  for (const auto& s : kFast) {
    const auto [n, in, out] = s;
    const auto x = random_floats(size_t(n) * in), w = random_floats(size_t(out) * in), b = random_floats(size_t(out));
    const auto dy = random_floats(size_t(n) * out);
    for (const float* bias : {b.data(), static_cast<const float*>(nullptr)}) {
      auto want = poisoned(size_t(n) * out), got = poisoned(size_t(n) * out);
      graft::cpu::dense_forward_reference(n, in, out, x.data(), w.data(), bias, want.data());
      graft::cpu::dense_forward_fast(n, in, out, x.data(), w.data(), bias, got.data());
      EXPECT_LT(relative_error(got.data(), want.data(), want.size(), term_scale(x, w, bias, out)), kFp32Tolerance)
          << "forward " << describe(s);
    }
    auto dx_want = poisoned(size_t(n) * in), dx_got = poisoned(size_t(n) * in);
    graft::cpu::dense_backward_data_reference(n, in, out, dy.data(), w.data(), dx_want.data());
    graft::cpu::dense_backward_data_fast(n, in, out, dy.data(), w.data(), dx_got.data());
    EXPECT_LT(relative_error(dx_got, dx_want), kFp32Tolerance) << "dx " << describe(s);
    auto dw_want = poisoned(size_t(out) * in), dw_got = poisoned(size_t(out) * in);
    auto db_want = poisoned(size_t(out)), db_got = poisoned(size_t(out));
    graft::cpu::dense_backward_weights_reference(n, in, out, x.data(), dy.data(), dw_want.data(), db_want.data());
    graft::cpu::dense_backward_weights_fast(n, in, out, x.data(), dy.data(), dw_got.data(), db_got.data());
    EXPECT_LT(relative_error(dw_got, dw_want), kFp32Tolerance) << "dw " << describe(s);
    EXPECT_LT(relative_error(db_got, db_want), kFp32Tolerance) << "dbias " << describe(s);
    auto dw_nobias = poisoned(size_t(out) * in);
    graft::cpu::dense_backward_weights_fast(n, in, out, x.data(), dy.data(), dw_nobias.data(), nullptr);
    EXPECT_LT(relative_error(dw_nobias, dw_want), kFp32Tolerance) << "dw, no dbias " << describe(s);
  }
}

// L = dot(dense(x, w, b), r): dL/dx = backward_data(r), dL/dw and dL/db = backward_weights(x, r).
TEST(DenseTest, BackwardMatchesFiniteDifferences) {
  for (const auto& s : kSmall) {
    const auto [n, in, out] = s;
    auto x = random_floats(size_t(n) * in), w = random_floats(size_t(out) * in), b = random_floats(size_t(out));
    const auto r = random_floats(size_t(n) * out);
    auto y = poisoned(size_t(n) * out);
    const auto loss = [&] {
      graft::cpu::dense_forward_reference(n, in, out, x.data(), w.data(), b.data(), y.data());
      return dot(y, r);
    };
    for (bool fast : {false, true}) {
      auto dx = poisoned(x.size()), dw = poisoned(w.size()), db = poisoned(b.size());
      if (fast) {
        graft::cpu::dense_backward_data_fast(n, in, out, r.data(), w.data(), dx.data());
        graft::cpu::dense_backward_weights_fast(n, in, out, x.data(), r.data(), dw.data(), db.data());
      } else {
        graft::cpu::dense_backward_data_reference(n, in, out, r.data(), w.data(), dx.data());
        graft::cpu::dense_backward_weights_reference(n, in, out, x.data(), r.data(), dw.data(), db.data());
      }
      const std::string tag = (fast ? " fast " : " reference ") + describe(s);
      expect_gradient_close(dx, numerical_gradient(x, loss), "dx" + tag);
      expect_gradient_close(dw, numerical_gradient(w, loss), "dw" + tag);
      expect_gradient_close(db, numerical_gradient(b, loss), "dbias" + tag);
    }
  }
}

}  // namespace
