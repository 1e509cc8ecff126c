// Element-wise ops: ReLU against its formula and finite differences; dropout's mask (rate,
// scaling, determinism per (seed, stream), the same mask in backward); add and scale.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "tests/testing.h"

namespace {

using graft::testing::dot;
using graft::testing::expect_gradient_close;
using graft::testing::numerical_gradient;
using graft::testing::poisoned;
using graft::testing::random_floats;
using graft::testing::random_int;
using graft::testing::rng;

// Random values kept at least 0.05 away from zero, where ReLU has its kink.
std::vector<float> away_from_zero(size_t n) {
  auto v = random_floats(n, 0.05f, 1.0f);
  for (auto& x : v)
    if (random_int(0, 1)) x = -x;
  return v;
}

TEST(ElementwiseTest, ReluForward) {
  auto x = random_floats(1001);
  x[0] = 0.0f;
  x[1] = -0.0f;
  auto y = poisoned(x.size());
  graft::cpu::relu_forward(int64_t(x.size()), x.data(), y.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i] > 0 ? x[i] : 0.0f) << i;
}

TEST(ElementwiseTest, ReluBackwardMatchesFiniteDifferences) {
  auto x = away_from_zero(257);
  const auto r = random_floats(x.size());
  auto y = poisoned(x.size()), dx = poisoned(x.size());
  graft::cpu::relu_forward(int64_t(x.size()), x.data(), y.data());
  graft::cpu::relu_backward(int64_t(x.size()), y.data(), r.data(), dx.data());
  expect_gradient_close(dx, numerical_gradient(x, [&] {
                          graft::cpu::relu_forward(int64_t(x.size()), x.data(), y.data());
                          return dot(y, r);
                        }),
                        "relu dx");
}

TEST(ElementwiseTest, DropoutRateAndScaling) {
  const size_t count = 200000;
  const auto x = away_from_zero(count);
  for (float p : {0.1f, 0.5f, 0.8f}) {
    const uint64_t seed = rng()(), stream = rng()() % 1000;
    auto y = poisoned(count);
    graft::cpu::dropout_forward(int64_t(count), p, seed, stream, 0, x.data(), y.data());
    size_t dropped = 0;
    for (size_t i = 0; i < count; ++i) {
      if (y[i] == 0.0f) {
        ++dropped;
      } else {
        EXPECT_FLOAT_EQ(y[i], x[i] / (1.0f - p)) << i;
      }
    }
    // Binomial(count, p): 6 standard deviations is < 0.007 here.
    const double frac = double(dropped) / count, sd = std::sqrt(p * (1.0 - p) / count);
    EXPECT_NEAR(frac, p, 6 * sd) << "p=" << p;
  }
}

TEST(ElementwiseTest, DropoutZeroRateIsIdentity) {
  const auto x = random_floats(1000);
  auto y = poisoned(x.size());
  graft::cpu::dropout_forward(int64_t(x.size()), 0.0f, rng()(), 3, 0, x.data(), y.data());
  EXPECT_EQ(y, x);
}

TEST(ElementwiseTest, DropoutMaskIsDeterministicPerSeedAndStream) {
  const size_t count = 10000;
  const float p = 0.5f;
  const auto x = away_from_zero(count);
  const uint64_t seed = rng()(), stream = rng()() % 100000;
  const auto mask = [&](uint64_t sd, uint64_t st) {
    auto y = poisoned(count);
    graft::cpu::dropout_forward(int64_t(count), p, sd, st, 0, x.data(), y.data());
    std::vector<bool> m(count);
    for (size_t i = 0; i < count; ++i) m[i] = y[i] != 0.0f;
    return m;
  };
  const auto differing = [&](const std::vector<bool>& a, const std::vector<bool>& b) {
    size_t d = 0;
    for (size_t i = 0; i < count; ++i) d += a[i] != b[i];
    return d;
  };
  const auto base = mask(seed, stream);
  EXPECT_EQ(differing(base, mask(seed, stream)), 0u);
  // Independent masks at p = 0.5 differ in about half the places.
  EXPECT_GT(differing(base, mask(seed, stream + 1)), count / 3);
  EXPECT_GT(differing(base, mask(seed + 1, stream)), count / 3);
}

TEST(ElementwiseTest, DropoutOfAPartDrawsTheWholeBatchsMaskForIt) {
  // A data-parallel rank or a chunk runs rows [r0, r1) of a batch with first = r0 * row size:
  // its mask is the whole batch's mask there, forward and backward.
  const int64_t row = random_int(32, 64), rows = random_int(4, 30);
  const int64_t r0 = random_int(1, int(rows) - 2), r1 = random_int(int(r0) + 1, int(rows));
  const float p = 0.4f;
  const uint64_t seed = rng()(), stream = rng()() % 1000;
  const auto x = away_from_zero(size_t(rows * row));
  auto whole = poisoned(x.size()), whole_dx = poisoned(x.size());
  graft::cpu::dropout_forward(rows * row, p, seed, stream, 0, x.data(), whole.data());
  graft::cpu::dropout_backward(rows * row, p, seed, stream, 0, x.data(), whole_dx.data());
  const int64_t count = (r1 - r0) * row;
  auto part = poisoned(size_t(count)), part_dx = poisoned(size_t(count));
  graft::cpu::dropout_forward(count, p, seed, stream, r0 * row, x.data() + r0 * row, part.data());
  graft::cpu::dropout_backward(count, p, seed, stream, r0 * row, x.data() + r0 * row, part_dx.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + r0 * row));
  EXPECT_TRUE(std::equal(part_dx.begin(), part_dx.end(), whole_dx.begin() + r0 * row));
  // Without the offset the part would draw the whole batch's first rows' mask instead.
  graft::cpu::dropout_forward(count, p, seed, stream, 0, x.data() + r0 * row, part.data());
  EXPECT_FALSE(std::equal(part.begin(), part.end(), whole.begin() + r0 * row));
}

TEST(ElementwiseTest, DropoutBackwardUsesTheForwardMask) {
  const size_t count = 5000;
  const float p = 0.3f;
  const uint64_t seed = rng()(), stream = rng()() % 1000;
  auto x = away_from_zero(count);
  const auto dy = random_floats(count);
  auto y = poisoned(count), dx = poisoned(count);
  graft::cpu::dropout_forward(int64_t(count), p, seed, stream, 0, x.data(), y.data());
  graft::cpu::dropout_backward(int64_t(count), p, seed, stream, 0, dy.data(), dx.data());
  for (size_t i = 0; i < count; ++i) {
    if (y[i] == 0.0f)
      EXPECT_EQ(dx[i], 0.0f) << i;
    else
      EXPECT_FLOAT_EQ(dx[i], dy[i] / (1.0f - p)) << i;
  }
  // And as a gradient: finite differences of dot(dropout(x), r) on a short prefix.
  const size_t n = 64;
  x.resize(n);
  auto yn = poisoned(n);
  const std::vector<float> r(dy.begin(), dy.begin() + n);
  auto dxn = poisoned(n);
  graft::cpu::dropout_backward(int64_t(n), p, seed, stream, 0, r.data(), dxn.data());
  expect_gradient_close(dxn, numerical_gradient(x, [&] {
                          graft::cpu::dropout_forward(int64_t(n), p, seed, stream, 0, x.data(), yn.data());
                          return dot(yn, r);
                        }),
                        "dropout dx");
}

TEST(ElementwiseTest, AddAndScale) {
  const auto a = random_floats(333), b = random_floats(333);
  auto y = poisoned(a.size());
  graft::cpu::add(int64_t(a.size()), a.data(), b.data(), y.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(y[i], a[i] + b[i]);
  auto acc = a;  // y may alias a
  graft::cpu::add(int64_t(acc.size()), acc.data(), b.data(), acc.data());
  EXPECT_EQ(acc, y);
  const float alpha = random_floats(1, 0.5f, 2.0f)[0];
  graft::cpu::scale(int64_t(acc.size()), alpha, acc.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(acc[i], y[i] * alpha);
}

}  // namespace
