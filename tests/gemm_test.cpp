// sgemm_reference against a float64 formula; sgemm (OpenBLAS or the blocked loop) and
// sgemm_blocked against the reference, over every transpose combination, odd sizes, padded
// leading dimensions and BLAS beta semantics.
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "tests/testing.h"

namespace {

using graft::testing::kFp32Tolerance;
using graft::testing::poisoned;
using graft::testing::random_floats;
using graft::testing::random_int;
using graft::testing::relative_error;

using GemmFn = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int);

struct GemmCase {
  bool ta, tb;
  int m, n, k;
  float alpha, beta;
};

// Row-major operands for one case, with leading dimensions padded by a random amount.
struct Operands {
  GemmCase c;
  int lda, ldb, ldc;
  std::vector<float> a, b, c0;

  explicit Operands(const GemmCase& gc) : c(gc) {
    const int a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
    const int b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
    lda = a_cols + random_int(0, 3);
    ldb = b_cols + random_int(0, 3);
    ldc = c.n + random_int(0, 3);
    a = random_floats(size_t(a_rows) * lda);
    b = random_floats(size_t(b_rows) * ldb);
    // beta == 0 must ignore C entirely, so it starts as NaN; else C holds random values.
    c0 = c.beta == 0.0f ? poisoned(size_t(c.m) * ldc) : random_floats(size_t(c.m) * ldc);
    // Padding columns of C must come out untouched: mark them.
    for (int i = 0; i < c.m; ++i)
      for (int j = c.n; j < ldc; ++j) c0[size_t(i) * ldc + j] = 1234.5f;
  }
  double op_a(int i, int p) const { return c.ta ? a[size_t(p) * lda + i] : a[size_t(i) * lda + p]; }
  double op_b(int p, int j) const { return c.tb ? b[size_t(j) * ldb + p] : b[size_t(p) * ldb + j]; }

  std::vector<float> run(GemmFn fn) const {
    std::vector<float> out = c0;
    fn(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a.data(), lda, b.data(), ldb, c.beta, out.data(), ldc);
    return out;
  }
  // The m x n block of a C buffer; checks the padding columns were left alone.
  std::vector<float> block(const std::vector<float>& out) const {
    std::vector<float> r;
    for (int i = 0; i < c.m; ++i) {
      for (int j = 0; j < c.n; ++j) r.push_back(out[size_t(i) * ldc + j]);
      for (int j = c.n; j < ldc; ++j) EXPECT_EQ(out[size_t(i) * ldc + j], 1234.5f) << "padding of C written";
    }
    return r;
  }
  // The largest single term |alpha a_ip b_pj| or |beta c_ij|: the floor of the relative error,
  // so that an output that cancels to nearly zero (1x1x1 with beta != 0) is judged against the
  // size of what was summed, not against its own near-zero value.
  double term_scale() const {
    double s = 1e-6;
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        if (c.beta != 0.0f) s = std::max(s, std::abs(double(c.beta) * c0[size_t(i) * ldc + j]));
        for (int p = 0; p < c.k; ++p) s = std::max(s, std::abs(double(c.alpha) * op_a(i, p) * op_b(p, j)));
      }
    return s;
  }
  double error(const std::vector<float>& got, const std::vector<float>& want) const {
    EXPECT_EQ(got.size(), want.size());
    return relative_error(got.data(), want.data(), want.size(), term_scale());
  }
  std::vector<float> formula() const {
    std::vector<float> r;
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        double s = 0;
        for (int p = 0; p < c.k; ++p) s += op_a(i, p) * op_b(p, j);
        const double old = c.beta == 0.0f ? 0.0 : double(c.beta) * c0[size_t(i) * ldc + j];
        r.push_back(static_cast<float>(double(c.alpha) * s + old));
      }
    return r;
  }
};

std::vector<GemmCase> cases(const std::vector<std::array<int, 3>>& shapes) {
  std::vector<GemmCase> out;
  for (const auto& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (float beta : {0.0f, 1.0f, -0.5f}) out.push_back({bool(t & 1), bool(t & 2), s[0], s[1], s[2], 1.25f, beta});
  return out;
}

std::string describe(const GemmCase& c) {
  return "ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) + " m=" + std::to_string(c.m) +
         " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " beta=" + std::to_string(c.beta);
}

TEST(GemmTest, ReferenceMatchesFloat64Formula) {
  for (const auto& gc : cases({{1, 1, 1}, {7, 5, 3}, {13, 17, 19}, {4, 9, 1}})) {
    Operands op(gc);
    EXPECT_LT(op.error(op.block(op.run(graft::cpu::sgemm_reference)), op.formula()), 1e-6) << describe(gc);
  }
}

TEST(GemmTest, FastMatchesReference) {
  for (const auto& gc : cases({{1, 1, 1}, {7, 5, 3}, {33, 65, 130}, {1, 70, 9}, {67, 1, 200}})) {
    Operands op(gc);
    const auto want = op.block(op.run(graft::cpu::sgemm_reference));
    EXPECT_LT(op.error(op.block(op.run(graft::cpu::sgemm)), want), kFp32Tolerance) << describe(gc);
  }
}

TEST(GemmTest, BlockedFallbackMatchesReference) {
  // Sizes straddle the block sizes (64 x 128 x 256) so partial blocks are exercised.
  for (const auto& gc : cases({{1, 1, 1}, {5, 3, 7}, {70, 260, 140}, {129, 17, 257}})) {
    Operands op(gc);
    const auto want = op.block(op.run(graft::cpu::sgemm_reference));
    EXPECT_LT(op.error(op.block(op.run(graft::cpu::sgemm_blocked)), want), kFp32Tolerance) << describe(gc);
  }
}

TEST(GemmTest, EmptyInnerDimensionScalesC) {
  for (GemmFn fn : {graft::cpu::sgemm, graft::cpu::sgemm_blocked, graft::cpu::sgemm_reference}) {
    for (float beta : {0.0f, 0.5f}) {
      std::vector<float> c = beta == 0.0f ? poisoned(6) : std::vector<float>{1, 2, 3, 4, 5, 6};
      const float dummy = 7.0f;
      fn(false, false, 2, 3, 0, 1.0f, &dummy, 1, &dummy, 3, beta, c.data(), 3);
      for (int i = 0; i < 6; ++i) EXPECT_EQ(c[size_t(i)], beta == 0.0f ? 0.0f : 0.5f * float(i + 1));
    }
  }
}

}  // namespace
