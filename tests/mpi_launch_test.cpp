// What a rank that hangs, dies or fails does to the others under mpirun (tests/mpi/
// mpi_probe.cpp): every rank ends, non-zero, in bounded time, with the reason named; never a
// silent hang. Built without MPI, the tests skip and say so.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/graft_program.h"

namespace graft {
namespace {

#if defined(GRAFT_MPI_PROBE)
struct Launch {
  testing::ProgramResult result;
  double seconds = 0;
};

Launch launch_probe(const std::string& mode, double timeout) {
  // Open MPI refuses root and more ranks than cores unless told; leak checks stay off in the
  // probe (MPI's own allocations at exit are not ours).
  const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
                          "ASAN_OPTIONS=detect_leaks=0 timeout -k 5 120 " GRAFT_MPIEXEC " -np 2 " GRAFT_MPI_PROBE " " +
                          mode + " " + std::to_string(timeout);
  const auto start = std::chrono::steady_clock::now();
  Launch l;
  l.result = testing::run_command(cmd);
  l.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return l;
}

TEST(MpiLaunch, AllRanksPassABarrierWhenNothingGoesWrong) {
  const Launch l = launch_probe("none", 30);
  EXPECT_EQ(l.result.status, 0) << l.result.output;
  EXPECT_NE(l.result.output.find("rank 0 passed"), std::string::npos) << l.result.output;
  EXPECT_NE(l.result.output.find("rank 1 passed"), std::string::npos) << l.result.output;
}

TEST(MpiLaunch, AHangingRankEndsEveryRankAfterTheTimeoutNamingTheCall) {
  const double timeout = 2 + testing::random_int(0, 2);
  const Launch l = launch_probe("hang", timeout);
  EXPECT_NE(l.result.status, 0) << l.result.output;
  EXPECT_NE(l.result.output.find("the probe's barrier"), std::string::npos) << l.result.output;
  EXPECT_NE(l.result.output.find("a rank died or hangs"), std::string::npos) << l.result.output;
  EXPECT_GE(l.seconds, timeout);
  EXPECT_LT(l.seconds, timeout + 60) << "the other rank hung on";
  EXPECT_EQ(l.result.output.find("rank 0 passed"), std::string::npos) << l.result.output;
}

TEST(MpiLaunch, AKilledRankEndsTheOthersLongBeforeTheirTimeout) {
  const Launch l = launch_probe("die", 600);
  EXPECT_NE(l.result.status, 0) << l.result.output;
  EXPECT_LT(l.seconds, 60) << "waited for the timeout instead of noticing the dead rank";
  EXPECT_EQ(l.result.output.find("rank 0 passed"), std::string::npos) << l.result.output;
}

TEST(MpiLaunch, AnErrorOnOneRankEndsEveryRankWithItsMessage) {
  const Launch l = launch_probe("error", 600);
  EXPECT_NE(l.result.status, 0) << l.result.output;
  EXPECT_NE(l.result.output.find("rank 1 found something wrong"), std::string::npos) << l.result.output;
  EXPECT_LT(l.seconds, 60);
}
#else
TEST(MpiLaunch, SkippedWithoutMpi) { GTEST_SKIP() << "graft was built without MPI (cmake/graft_mpi.cmake found none)"; }
#endif

}  // namespace
}  // namespace graft
