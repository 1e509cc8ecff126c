// The MPI communicator across real ranks (ctest runs this binary under mpirun with 2 and 3
// ranks): sums, broadcasts and `any` against what every rank computes alone from the same
// fresh seed.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "runtime/mpi/mpi_communicator.h"
#include "tests/mpi/mpi_testing.h"

namespace graft {
namespace {

using testing::shared_seed;
using testing::world;

template <typename T>
std::vector<T> values_of(int rank, size_t n, uint64_t salt) {
  std::mt19937_64 gen(shared_seed() * 1000003u + salt * 101u + static_cast<uint64_t>(rank));
  std::uniform_real_distribution<double> u(-10, 10);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(gen));
  return v;
}

TEST(MpiCommunicator, RanksAndSizeDescribeTheWorld) {
  EXPECT_GE(world().size(), 2) << "run under mpirun -np 2 or more";
  EXPECT_GE(world().rank(), 0);
  EXPECT_LT(world().rank(), world().size());
  EXPECT_TRUE(launched_by_mpi());
  EXPECT_NE(world().describe().find(std::to_string(world().size()) + " ranks"), std::string::npos);
}

TEST(MpiCommunicator, SumsFloatsAndDoublesOverEveryRank) {
  std::mt19937_64 gen(shared_seed());
  for (int trial = 0; trial < 5; ++trial) {
    const size_t n = std::uniform_int_distribution<size_t>(1, 100000)(gen);
    auto f = values_of<float>(world().rank(), n, 2 * trial);
    auto d = values_of<double>(world().rank(), n, 2 * trial + 1);
    world().sum(f.data(), n, "test floats");
    world().sum(d.data(), n, "test doubles");
    std::vector<double> ef(n, 0.0), ed(n, 0.0);
    for (int r = 0; r < world().size(); ++r) {
      const auto rf = values_of<float>(r, n, 2 * trial);
      const auto rd = values_of<double>(r, n, 2 * trial + 1);
      for (size_t i = 0; i < n; ++i) {
        ef[i] += rf[i];
        ed[i] += rd[i];
      }
    }
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NEAR(f[i], ef[i], 1e-5 * (1 + std::abs(ef[i]))) << "float " << i << " of " << n;
      ASSERT_NEAR(d[i], ed[i], 1e-12 * (1 + std::abs(ed[i]))) << "double " << i << " of " << n;
    }
  }
}

TEST(MpiCommunicator, BroadcastsARootsBytesAndAgreesOnAny) {
  std::mt19937_64 gen(shared_seed() + 7);
  for (int trial = 0; trial < 10; ++trial) {
    const int root = std::uniform_int_distribution<int>(0, world().size() - 1)(gen);
    const size_t n = std::uniform_int_distribution<size_t>(1, 5000)(gen);
    std::vector<uint8_t> bytes(n), expected(n);
    std::mt19937_64 data(shared_seed() + 1000u + static_cast<uint64_t>(trial));
    for (auto& b : expected) b = static_cast<uint8_t>(data());
    if (world().rank() == root) bytes = expected;
    world().broadcast(bytes.data(), n, root, "test bytes");
    EXPECT_EQ(bytes, expected) << "root " << root;
    // `any`: one random rank says yes, or none.
    const int yes = std::uniform_int_distribution<int>(-1, world().size() - 1)(gen);
    EXPECT_EQ(world().any(world().rank() == yes, "test any"), yes >= 0);
  }
  world().barrier("test end");
}

}  // namespace
}  // namespace graft
