// `graft train` under mpirun (CPU ranks): the global batch split over 2 or 3 ranks reaches the
// parameters one process reaches on the same data, seed and flags (uneven splits and a short
// last batch included), with a frozen base and fully trainable; rank 0 alone prints and
// writes; --grad-accumulation over 2 ranks equals one process; validation is split over the
// ranks with one process's numbers; a 2-rank checkpoint resumes on 3 ranks and on one; SIGINT
// on one rank stops them all at one step and that checkpoint resumes; a killed rank ends the run.
// Dropout draws each rank's rows' masks as one process does, so with dropout too.
// Built without MPI, the tests skip and say so. Needs Fashion-MNIST (tools/deps.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "runtime/dataset.h"
#include "runtime/safetensors.h"
#include "tests/graft_program.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

#if defined(GRAFT_MPIEXEC)
// One OpenBLAS thread per rank: two ranks on CI's two cores.
const std::string kMpiEnv = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                            "OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 ";

// `ranks` processes under mpirun, or (0) one process without it, in the same environment.
testing::ProgramResult run_ranks(int ranks, const std::string& args) {
  const std::string launcher = ranks ? GRAFT_MPIEXEC " -np " + std::to_string(ranks) + " " : std::string();
  return testing::run_command(kMpiEnv + "timeout -k 5 300 " + launcher + GRAFT_BINARY + " " + args);
}

class DataParallelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(fs::path(kFashionMnistDir) / "t10k-labels-idx1-ubyte.gz"))
      GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  }
  std::string file(const std::string& name) const { return dir_.file(name); }
  testing::TempDir dir_;
};

// The largest difference of two checkpoints' tensors by the project's rule (max |a - b| over
// the tensor's largest magnitude), and the tensor that has it.
std::pair<double, std::string> checkpoint_difference(const std::string& a_path, const std::string& b_path) {
  const auto a = read_safetensors(a_path), b = read_safetensors(b_path);
  EXPECT_EQ(a.tensors.size(), b.tensors.size());
  std::pair<double, std::string> worst{0.0, ""};
  for (const auto& [name, t] : a.tensors) {
    const auto& u = b.tensors.at(name);
    EXPECT_EQ(t.bytes.size(), u.bytes.size()) << name;
    const double error = testing::relative_error(reinterpret_cast<const float*>(t.bytes.data()),
                                                 reinterpret_cast<const float*>(u.bytes.data()),
                                                 std::min(t.bytes.size(), u.bytes.size()) / sizeof(float));
    if (error >= worst.first) worst = {error, name};
  }
  return worst;
}

// `got` (parameters and optimizer state) against `one`, one process's run of `args` at
// learning rate `lr`: within 1e-3 of every tensor. Training through ReLU and max pooling is
// piecewise smooth, and another summation order (ranks) or a resume can flip one kink at some
// step and move a few weights by ~1e-2 of their tensor. When `got` is farther than 1e-3, one
// process runs again with its learning rate moved by a few parts per million, a perturbation of
// the same size: `got` must be no farther from `one` than twice the farthest of those runs. A
// wrong sum (an unaveraged gradient, a dropped or doubled shard, a wrong mask) is ~0.1-1 off
// while one process stays within ~1e-5 of itself.
void expect_parameters_of_one_process(const std::string& args, double lr, const std::string& one,
                                      const std::string& got, const testing::TempDir& dir) {
  constexpr double kTolerance = 1e-3;
  const auto [error, tensor] = checkpoint_difference(one, got);
  if (error <= kTolerance) return;
  double spread = 0;
  for (double factor : {1 - 2e-6, 1 + 2e-6, 1 - 2e-5, 1 + 2e-5}) {
    std::ostringstream moved;
    moved << std::setprecision(10) << lr * factor;
    const std::string path = dir.file("moved.safetensors");
    const auto run = run_ranks(0, args + " --lr " + moved.str() + " --save " + path);
    ASSERT_EQ(run.status, 0) << run.output;
    spread = std::max(spread, checkpoint_difference(one, path).first);
  }
  std::printf("[graft] %s is %.3g off %s in %s; one process with its lr moved by parts per million: %.3g\n",
              got.c_str(), error, one.c_str(), tensor.c_str(), spread);
  EXPECT_LE(error, 2 * spread + kTolerance) << tensor << " differs between " << one << " and " << got
                                            << " by more than one process differs from itself";
}

TEST_F(DataParallelCli, RanksReachTheParametersOfOneProcessOnTheSameGlobalBatch) {
  const int seed = testing::random_int(0, 1000);
  const int batch = testing::random_int(5, 9);  // 30 examples: uneven splits, a short last batch
  // The third: a head with dropout, whose masks each rank draws for its rows of the global batch.
  for (const std::string freeze :
       {"--freeze 'conv*'", "", "--freeze 'conv*' --head 'flatten,dense:32,relu,dropout:0.5,dense:N'"}) {
    const std::string args = "train --device cpu --progress off --classes 0-2 --per-class 10 --epochs 2 --optimizer sgd "
                             "--momentum 0.9 --batch " + std::to_string(batch) + " --seed " + std::to_string(seed) + " " +
                             freeze;
    const std::string common = args + " --lr 0.02";
    const auto one = run_ranks(0, common + " --save " + file("one.safetensors") + " --metrics " + file("one.jsonl"));
    ASSERT_EQ(one.status, 0) << one.output;
    for (int ranks : {2, 3}) {
      const std::string out = file("ranks" + std::to_string(ranks) + ".safetensors");
      const auto many = run_ranks(ranks, common + " --save " + out + " --metrics " + file("many.jsonl"));
      ASSERT_EQ(many.status, 0) << many.output;
      EXPECT_TRUE(testing::has(many.output, "data parallel: MPI, " + std::to_string(ranks) + " ranks")) << many.output;
      // Rank 0 alone prints the epoch lines and writes the metrics.
      size_t lines = 0;
      for (size_t at = many.output.find("epoch   1/2"); at != std::string::npos; at = many.output.find("epoch   1/2", at + 1))
        ++lines;
      EXPECT_EQ(lines, 1u) << many.output;
      const std::string metrics = testing::slurp(file("many.jsonl"));
      EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 2) << metrics;
      expect_parameters_of_one_process(args, 0.02, file("one.safetensors"), out, dir_);
    }
  }
}

// --grad-accumulation: each rank accumulates its rows of K global micro-batches and the ranks
// sum once per optimizer step; the result is one process's K micro-batches of the global batch
// (a partial accumulation at the epoch's end included: 30 examples in uneven batches). SGD
// with momentum, not Adam: Adam's step is about lr wherever a gradient is near zero, so the
// last-bit noise of another summation order flips such steps and moves weights by ~lr.
TEST_F(DataParallelCli, RanksWithGradientAccumulationReachTheParametersOfOneProcess) {
  const int seed = testing::random_int(0, 1000);
  const int batch = testing::random_int(4, 7);
  const int accumulation = testing::random_int(2, 3);
  const std::string args = "train --device cpu --progress off --classes 0-2 --per-class 10 --epochs 2 --optimizer sgd "
                           "--momentum 0.9 --batch " + std::to_string(batch) + " --grad-accumulation " +
                           std::to_string(accumulation) + " --seed " + std::to_string(seed);
  const std::string common = args + " --lr 0.02";
  const auto one = run_ranks(0, common + " --save " + file("one.safetensors"));
  ASSERT_EQ(one.status, 0) << one.output;
  const auto two = run_ranks(2, common + " --save " + file("two.safetensors"));
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_TRUE(testing::has(two.output, "data parallel: MPI, 2 ranks")) << two.output;
  expect_parameters_of_one_process(args, 0.02, file("one.safetensors"), file("two.safetensors"), dir_);
  // Without accumulation the same run differs: the test sees the accumulation.
  const auto plain = run_ranks(2, "train --device cpu --progress off --classes 0-2 --per-class 10 --epochs 2 --optimizer "
                                  "sgd --momentum 0.9 --lr 0.02 --batch " + std::to_string(batch) + " --seed " + std::to_string(seed) +
                                  " --save " + file("plain.safetensors"));
  ASSERT_EQ(plain.status, 0) << plain.output;
  const auto a = read_safetensors(file("one.safetensors")), b = read_safetensors(file("plain.safetensors"));
  bool differs = false;
  for (const auto& [name, t] : a.tensors) differs = differs || t.bytes != b.tensors.at(name).bytes;
  EXPECT_TRUE(differs) << "--grad-accumulation " << accumulation << " changed nothing";
}

// Validation is split over the ranks and its sums added: the metrics file of 2 and 3 ranks
// has one process's val_loss, val_accuracy and val_examples (each rank's whole set, summed,
// would count every example R times; a rank's shard alone, fewer).
TEST_F(DataParallelCli, RanksSplitValidationAndReportOneProcesssNumbers) {
  const std::string common = "train --device cpu --progress off --classes 0-2 --per-class 8 --epochs 1 --optimizer sgd "
                             "--lr 0.02 --val test --batch " + std::to_string(testing::random_int(4, 7)) + " --seed " +
                             std::to_string(testing::random_int(0, 1000));
  const auto one = run_ranks(0, common + " --metrics " + file("one.jsonl"));
  ASSERT_EQ(one.status, 0) << one.output;
  const auto expected = nlohmann::json::parse(testing::slurp(file("one.jsonl")));
  ASSERT_GT(expected.at("val_examples").get<int64_t>(), 0) << expected.dump();
  for (int ranks : {2, 3}) {
    const std::string metrics = file("ranks" + std::to_string(ranks) + ".jsonl");
    const auto many = run_ranks(ranks, common + " --metrics " + metrics);
    ASSERT_EQ(many.status, 0) << many.output;
    const auto got = nlohmann::json::parse(testing::slurp(metrics));
    EXPECT_EQ(got.at("val_examples"), expected.at("val_examples")) << ranks << " ranks";
    for (const char* key : {"val_loss", "val_accuracy"})
      EXPECT_NEAR(got.at(key).get<double>(), expected.at(key).get<double>(),
                  1e-5 * (1 + std::abs(expected.at(key).get<double>())))
          << key << ", " << ranks << " ranks";
  }
}

TEST_F(DataParallelCli, ACheckpointOfTwoRanksResumesOnThreeAndOnOne) {
  const std::string args = "train --device cpu --progress off --classes 0-2 --per-class 8 --optimizer sgd --batch 6 "
                           "--seed " + std::to_string(testing::random_int(0, 1000));
  const std::string common = args + " --lr 0.05";
  ASSERT_EQ(run_ranks(0, common + " --epochs 3 --save " + file("straight.safetensors")).status, 0);
  const auto first = run_ranks(2, common + " --epochs 1 --save " + file("two.safetensors"));
  ASSERT_EQ(first.status, 0) << first.output;
  const auto second = run_ranks(3, common + " --epochs 2 --resume " + file("two.safetensors") + " --save " +
                                       file("three.safetensors"));
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_TRUE(testing::has(second.output, "resuming")) << second.output;
  const auto third = run_ranks(0, common + " --epochs 3 --resume " + file("three.safetensors") + " --save " +
                                        file("one.safetensors"));
  ASSERT_EQ(third.status, 0) << third.output;
  expect_parameters_of_one_process(args + " --epochs 3", 0.05, file("straight.safetensors"), file("one.safetensors"),
                                   dir_);
}

// SIGINT reaching one rank stops every rank after the same step (the ranks agree on it after
// each step); rank 0 saves once and names the resume command, and that checkpoint resumed on one
// process ends where an uninterrupted one-process run ends.
// Whether the newest process whose command line matches `pattern` (the one pkill -n picks)
// catches SIGINT: its handler is installed (Linux: SigCgt in /proc/PID/status).
bool newest_catches_sigint(const std::string& pattern) {
  FILE* p = popen(("pgrep -n -f -- '" + pattern + "'").c_str(), "r");
  if (!p) return false;
  char pid[32] = {};
  const bool found = std::fgets(pid, sizeof pid, p) != nullptr;
  pclose(p);
  if (!found) return false;
  std::ifstream status("/proc/" + std::string(pid, std::strcspn(pid, "\n")) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("SigCgt:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (SIGINT - 1)) & 1;
  return false;
}

TEST_F(DataParallelCli, AnInterruptOnOneRankStopsEveryRankAndResumesOnOne) {
  const std::string args = "train --device cpu --progress off --classes 0-2 --per-class 300 --batch 16 --epochs 2 "
                           "--optimizer sgd --seed " + std::to_string(testing::random_int(0, 1000));
  const std::string common = args + " --lr 0.02";
  ASSERT_EQ(run_ranks(0, common + " --save " + file("straight.safetensors")).status, 0);
  // A unique timeout marks this run's processes; the newest of them is a rank, not mpirun.
  const std::string mark = std::to_string(testing::random_int(1000, 9999));
  const std::string log = file("log.txt");
  const std::string cmd = kMpiEnv + "timeout -k 5 300 " GRAFT_MPIEXEC " -np 2 " + std::string(GRAFT_BINARY) + " " +
                          common + " --save " + file("run.safetensors") + " --dist-timeout " + mark + " > " + log +
                          " 2>&1";
  int status = 0;
  std::thread runner([&] { status = std::system(cmd.c_str()); });
  // "[ ]": the pattern does not match the shell that runs pkill. The rank must have its
  // handler (installed after data loading, which a loaded machine may make the other rank
  // finish seconds after rank 0 says "data parallel"; mpirun, also matching, is older).
  const std::string pattern = "dist-timeout[ ]" + mark;
  for (int i = 0; i < 600 && testing::slurp(log).find("data parallel") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = 0; i < 1200 && !newest_catches_sigint(pattern); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(testing::random_int(100, 600)));
  std::system(("pkill -INT -n -f -- '" + pattern + "'").c_str());
  runner.join();
  const std::string out = testing::slurp(log);
  if (!testing::has(out, "interrupted at")) {
    EXPECT_EQ(status, 0) << "the run finished before the interrupt arrived:\n" << out;
    GTEST_SKIP() << "the run finished before the interrupt arrived";
  }
  EXPECT_NE(status, 0) << out;
  EXPECT_EQ(out.find("interrupted at"), out.rfind("interrupted at")) << "rank 0 alone reports:\n" << out;
  EXPECT_TRUE(testing::has(out, "--resume " + file("run.safetensors"))) << out;
  const auto resumed = run_ranks(0, common + " --resume " + file("run.safetensors") + " --save " + file("one.safetensors"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_TRUE(testing::has(resumed.output, "resuming")) << resumed.output;
  expect_parameters_of_one_process(args, 0.02, file("straight.safetensors"), file("one.safetensors"), dir_);
}

TEST_F(DataParallelCli, AKilledRankEndsTheRunNonZeroInTime) {
  // A unique timeout marks this run's processes; the newest of them is a rank, not mpirun.
  const std::string mark = std::to_string(testing::random_int(1000, 9999));
  const std::string log = file("log.txt");
  const std::string cmd = kMpiEnv + "timeout -k 5 300 " GRAFT_MPIEXEC " -np 2 " + std::string(GRAFT_BINARY) +
                          " train --device cpu --progress off --classes 0-4 --epochs 50 --batch 16 --save " +
                          file("run.safetensors") + " --dist-timeout " + mark + " > " + log + " 2>&1";
  const auto start = std::chrono::steady_clock::now();
  std::thread runner([&] { EXPECT_NE(std::system(cmd.c_str()), 0); });
  for (int i = 0; i < 600 && testing::slurp(log).find("data parallel") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(testing::random_int(100, 1000)));
  // "[ ]": the pattern does not match the shell that runs pkill.
  EXPECT_EQ(std::system(("pkill -9 -n -f -- 'dist-timeout[ ]" + mark + "'").c_str()), 0);
  runner.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 120) << testing::slurp(log);
  EXPECT_TRUE(testing::has(testing::slurp(log), "exited on signal 9") ||
              testing::has(testing::slurp(log), "a rank died or hangs"))
      << testing::slurp(log);
}
#else
TEST(DataParallelCli, SkippedWithoutMpi) { GTEST_SKIP() << "graft was built without MPI (cmake/graft_mpi.cmake found none)"; }
#endif

}  // namespace
}  // namespace graft
