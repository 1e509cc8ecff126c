// Shared test helpers: fresh random tensors, the tolerance rule, poison, the numerical
// gradient checker every op's backward test goes through, and a temporary directory.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iterator>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "base/error.h"

namespace graft::testing {

// A seed that differs per run (fresh inputs) but is printed, so a failure can be replayed
// with GRAFT_TEST_SEED=<seed>.
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("GRAFT_TEST_SEED")) return static_cast<uint64_t>(std::stoull(s));
    return static_cast<uint64_t>(std::random_device{}()) << 32 | std::random_device{}();
  }();
  return seed;
}

inline std::mt19937_64& rng() {
  static std::mt19937_64 gen = [] {
    std::printf("[graft] GRAFT_TEST_SEED=%llu\n", static_cast<unsigned long long>(test_seed()));
    return std::mt19937_64(test_seed());
  }();
  return gen;
}

inline std::vector<float> random_floats(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng());
  return v;
}

inline int random_int(int lo, int hi) {  // inclusive
  return std::uniform_int_distribution<int>(lo, hi)(rng());
}

// Filled with NaN so an output a kernel forgot to write cannot pass.
inline std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// The tolerance rule: max |a - b| / max(max |b|, floor) over the whole tensor. The floor
// keeps a tensor of near-zeros from dividing by nothing. NaN or Inf anywhere fails.
inline double relative_error(const float* a, const float* b, size_t n, double floor = 1e-6) {
  double max_diff = 0.0, max_ref = floor;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return std::numeric_limits<double>::infinity();
    max_diff = std::max(max_diff, std::abs(double(a[i]) - double(b[i])));
    max_ref = std::max(max_ref, std::abs(double(b[i])));
  }
  return max_diff / max_ref;
}
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  return relative_error(a.data(), b.data(), std::min(a.size(), b.size()));
}

inline constexpr double kFp32Tolerance = 1e-5;

// Central finite differences of a scalar function of `x`, in double around float inputs:
// d f / d x_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h. `f` must read x afresh each call.
inline std::vector<double> numerical_gradient(std::vector<float>& x, const std::function<double()>& f,
                                              float h = 1e-2f) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float saved = x[i];
    x[i] = saved + h;
    const double plus = f();
    x[i] = saved - h;
    const double minus = f();
    x[i] = saved;
    g[i] = (plus - minus) / (2.0 * double(h));
  }
  return g;
}

// Checks an analytic gradient against central differences. The rule: for each element,
// |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|); float32 forward passes
// give numeric gradients good to ~1e-3 at h = 1e-2.
inline void expect_gradient_close(const std::vector<float>& analytic, const std::vector<double>& numeric,
                                  const std::string& what, double rtol = 2e-2, double atol = 2e-3) {
  ASSERT_EQ(analytic.size(), numeric.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    const double a = analytic[i], n = numeric[i];
    const bool ok = std::isfinite(a) && std::abs(a - n) <= atol + rtol * std::max(std::abs(a), std::abs(n));
    if (!ok && reported++ < 5) ADD_FAILURE() << what << "[" << i << "]: analytic " << a << " numeric " << n;
  }
}

// A random projection r so that a vector output y reduces to the scalar sum_i r_i y_i,
// whose gradient with respect to y is r: the seed for every backward check.
inline double dot(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * double(r[i]);
  return s;
}

// "graft-Suite.Test" for the running test (characters other than letters, digits, '_', '.'
// and '-' become '_'), or "graft-test" outside one: a readable start for a file name.
inline std::string current_test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (!info) return "graft-test";
  std::string name = std::string("graft-") + info->test_suite_name() + "." + info->name();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') c = '_';
  return name;
}

// True when `text` contains `needle` (error messages, logs).
inline bool has(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// The message of the graft::Error that f() throws, or "(no error)".
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Where two results first differ, for a failed bitwise comparison (gtest prints only the
// first elements, rounded): how many differ, the first index and both values to 9 digits.
inline std::string first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return "sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size());
  size_t first = a.size(), differ = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && differ++ == 0) first = i;
  if (differ == 0) return "same bits";
  std::ostringstream s;
  s << std::setprecision(9) << differ << " of " << a.size() << " differ, first at " << first << ": " << a[first]
    << " and " << b[first];
  return s.str();
}

// Expects f() to throw a graft::Error whose message holds every one of `parts`.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << parts.front() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

// A file's contents, whole: as text, and as bytes.
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline std::vector<uint8_t> read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// A fresh directory under the system's temporary one, named `prefix`-pid-random (unique per
// process and per call), removed with everything in it when it goes out of scope. Removal
// ignores errors: a cleanup that fails never throws from a destructor.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = current_test_name())
      : path(std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rng()()))) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // The path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::string str() const { return path.string(); }
};

}  // namespace graft::testing
