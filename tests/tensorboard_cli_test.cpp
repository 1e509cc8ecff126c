// graft train --tensorboard end to end: the event file beside a run whose epoch scalars are
// its --metrics lines, and an unwritable folder refused before any data is read. Needs
// Fashion-MNIST (tools/deps.sh); skips visibly without it.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "runtime/dataset.h"
#include "tests/graft_program.h"
#include "tests/python_env.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

class TensorBoardCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(fs::path(kFashionMnistDir) / "t10k-labels-idx1-ubyte.gz"))
      GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  }
  testing::ProgramResult small_train(const std::string& extra) {
    return testing::run_graft("train --device cpu --progress off --classes 0-2 --per-class 8 --val test --epochs 2 "
                              "--batch 8 --seed " + std::to_string(testing::random_int(0, 1000)) + " " + extra);
  }
  testing::TempDir dir_;
};

TEST_F(TensorBoardCli, TrainWritesTheRunThatItsMetricsFileHolds) {
  const std::string board = dir_.file("runs/first"), metrics = dir_.file("m.jsonl");
  const auto r = small_train("--tensorboard " + board + " --metrics " + metrics);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(testing::has(r.output, "tensorboard: writing " + board + "/events.out.tfevents.")) << r.output;
  const auto py = testing::run_python(std::string(GRAFT_FIXTURE_DIR) + "/../interop/read_tensorboard.py", board);
  ASSERT_EQ(py.status, 0) << py.output;
  const auto j = nlohmann::json::parse(py.output);
  std::ifstream in(metrics);
  int epoch = 0;
  for (std::string line; std::getline(in, line); ++epoch) {
    const auto m = nlohmann::json::parse(line);
    EXPECT_EQ(j["scalars"]["epoch/loss"][epoch][1].get<float>(), m["loss"].get<float>());
    EXPECT_EQ(j["scalars"]["epoch/val_accuracy"][epoch][1].get<float>(), m["val_accuracy"].get<float>());
  }
  EXPECT_EQ(epoch, 2);
  EXPECT_EQ(j["images"]["val/confusion_matrix"].size(), 2u);
  EXPECT_TRUE(testing::has(j["texts"]["config"][0][1].get<std::string>(), board)) << "the resolved flags";
}

TEST_F(TensorBoardCli, AnUnwritableFolderStopsTheRunBeforeItStarts) {
  std::ofstream(dir_.file("a-file")) << "not a folder";
  const std::string board = dir_.file("a-file") + "/runs";
  const auto r = small_train("--tensorboard " + board);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(testing::has(r.output, "--tensorboard " + board)) << r.output;
  EXPECT_TRUE(testing::has(r.output, "give a folder you can write to")) << r.output;
  EXPECT_FALSE(testing::has(r.output, "data: ")) << "refused before reading data:\n" << r.output;
  EXPECT_FALSE(testing::has(r.output, "epoch ")) << r.output;
}

}  // namespace
}  // namespace graft
