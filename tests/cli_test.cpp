// The graft program end to end: its commands, and a clear message and a non-zero exit for
// each user mistake, with nothing existing overwritten. Needs Fashion-MNIST (installed by
// tools/deps.sh); skips visibly without it.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/dataset.h"
#include "runtime/safetensors.h"
#include "tests/graft_program.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

using Result = testing::ProgramResult;
using testing::slurp;
Result run(const std::string& args) { return testing::run_graft(args); }

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(fs::path(kFashionMnistDir) / "t10k-labels-idx1-ubyte.gz"))
      GTEST_SKIP() << "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)";
  }
  std::string file(const std::string& name) const { return dir_.file(name); }
  // A small, fast, seeded training run.
  Result small_train(const std::string& extra) {
    return run("train --device cpu --progress off --classes 0-2 --per-class 8 --epochs 1 --batch 8 --seed " +
               std::to_string(testing::random_int(0, 1000)) + " " + extra);
  }
  testing::TempDir dir_;
};

void expect_error(const Result& r, const std::string& needle) {
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "missing '" << needle << "' in:\n" << r.output;
}

TEST_F(Cli, InfoShowsFrozenLayersAndThePlan) {
  const auto r = run("info --device cpu --model fmnist_cnn --freeze 'conv*' --batch 64");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("conv1"), std::string::npos);
  EXPECT_NE(r.output.find("frozen"), std::string::npos);
  EXPECT_NE(r.output.find("weights only"), std::string::npos) << "fc1 computes no input gradient";
  EXPECT_NE(r.output.find("trainable parameters 402826, frozen parameters 18816"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("planned memory for batch 64"), std::string::npos);
  // Each row starts with the node index that layer ranges take: freezing '..3' (conv1 to
  // conv2) gives the same totals as 'conv*'.
  EXPECT_TRUE(testing::has(r.output, "\n   3  conv2 ")) << r.output;
  const auto by_index = run("info --device cpu --model fmnist_cnn --freeze ..3 --batch 64");
  EXPECT_TRUE(testing::has(by_index.output, "trainable parameters 402826, frozen parameters 18816")) << by_index.output;
  // The frozen layers planned 8 examples at a time: fewer activation bytes, and it says so.
  const auto chunked = run("info --device cpu --model fmnist_cnn --freeze 'conv*' --batch 64 --frozen-chunk 8");
  ASSERT_EQ(chunked.status, 0) << chunked.output;
  EXPECT_NE(chunked.output.find("frozen chunks: the layers up to 'flatten' run 8 examples at a time"), std::string::npos)
      << chunked.output;
  auto activations = [](const std::string& out) { return out.substr(out.find("  activations "), 40); };
  EXPECT_NE(activations(chunked.output), activations(r.output));
  // The outputs are the model's (a spec's dense:3), not the data's ten classes.
  const auto sequence = run("info --device cpu --model gru:4,flatten,dense:3 --batch 2");
  ASSERT_EQ(sequence.status, 0) << sequence.output;
  EXPECT_TRUE(testing::has(sequence.output, "3 outputs")) << sequence.output;
  EXPECT_TRUE(testing::has(sequence.output, "every step, flattened")) << sequence.output;
  EXPECT_TRUE(testing::has(sequence.output, "[2, 112]")) << sequence.output;
}

TEST_F(Cli, TrainSaveEvalAndInitFrom) {
  auto r = small_train("--save " + file("a.safetensors") + " --metrics " + file("m.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("epoch   1/1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("img/s"), std::string::npos);
  EXPECT_NE(slurp(file("m.jsonl")).find("\"accuracy\""), std::string::npos);
  r = run("eval --device cpu --classes 0-2 --checkpoint " + file("a.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy"), std::string::npos);
  EXPECT_NE(r.output.find("Trouser"), std::string::npos) << "per-class lines name the classes";
  // A fresh head on 2 classes: the head is skipped and reported.
  r = run("train --device cpu --progress off --classes 5,6 --per-class 4 --epochs 1 --batch 4 --init-from " +
          file("a.safetensors") + " --freeze 'conv*'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("skipped (shape differs) fc2.weight"), std::string::npos) << r.output;
  r = run("train --device cpu --progress off --classes 5,6 --per-class 4 --epochs 1 --strict --init-from " +
          file("a.safetensors"));
  expect_error(r, "fc2.weight: file [3, 128], model [2, 128]");
}

TEST_F(Cli, BadInputsAreNamedAndNothingIsOverwritten) {
  std::ofstream(file("keep.safetensors")) << "precious";
  const std::string keep = " --save " + file("keep.safetensors");
  expect_error(small_train("--data-dir " + file("nowhere") + keep), "nowhere");
  expect_error(small_train("--classes 3-12" + keep), "--classes");
  expect_error(run("train --device cpu --classes 0-1 --per-class 7000" + keep), "7000");
  expect_error(small_train("--freeze 'features.*'" + keep), "--freeze 'features.*' matches no layer");
  expect_error(small_train("--save " + file("no/such/dir/x.safetensors")), "does not exist");
  expect_error(run("train --device cpu --epochs 0"), "--epochs: must be a whole number of at least 1, got 0");
  expect_error(run("train --device cpu --batch 2.5"), "--batch: must be a whole number of at least 1, got 2.5");
  expect_error(run("bench --device cpu --warmup -1"), "--warmup: must be a whole number of at least 0, got -1");
  expect_error(run("train --device cpu --bogus-flag"), "bogus-flag");
  expect_error(run("train --device cuda --per-class 1"), "--device cuda");
  EXPECT_TRUE(slurp(file("keep.safetensors")) == "precious") << "a failed run overwrote an existing file";

  // A checkpoint cut short, and one whose header points outside the file.
  ASSERT_EQ(small_train("--save " + file("good.safetensors")).status, 0);
  const std::string good = slurp(file("good.safetensors"));
  std::ofstream(file("cut.safetensors"), std::ios::binary) << good.substr(0, good.size() / 2);
  expect_error(run("eval --device cpu --classes 0-2 --checkpoint " + file("cut.safetensors")), "cut.safetensors");
  std::string lying = good;
  lying[0] = static_cast<char>(0xff);  // header length now runs past the end
  lying[1] = static_cast<char>(0xff);
  std::ofstream(file("lying.safetensors"), std::ios::binary) << lying;
  expect_error(run("eval --device cpu --classes 0-2 --checkpoint " + file("lying.safetensors")), "lying.safetensors");
  expect_error(run("eval --device cpu --classes 0-2 --checkpoint " + file("absent.safetensors")), "absent.safetensors");
}

// A typo in a flag costs no data loading: the error comes before the "data:" line.
TEST_F(Cli, CheapMistakesAreFoundBeforeTheDataIsRead) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"--model vgg17", "--model 'vgg17' is not a known architecture"},
      {"--head 'flatten,dens:3'", "'dens:3' is not a known layer"},
      {"--init-from " + file("absent.safetensors"), "absent.safetensors: no such file"},
      {"--resume " + file("absent.safetensors"), "absent.safetensors: no such file"},
  };
  for (const auto& [flags, message] : cases) {
    const auto r = run("train --device cpu --progress off " + flags);
    expect_error(r, message);
    EXPECT_FALSE(testing::has(r.output, "data:")) << flags << ":\n" << r.output;
  }
}

TEST_F(Cli, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  ASSERT_EQ(small_train("--save " + file("run.safetensors")).status, 0);
  const std::string before = slurp(file("run.safetensors"));
  const auto r = run("train --device cpu --progress off --classes 0-2 --per-class 8 --epochs 3 --batch 4 "
                     "--optimizer adam --lr 1e38 --save " + file("run.safetensors"));
  expect_error(r, "became NaN");
  EXPECT_NE(r.output.find("step"), std::string::npos);
  EXPECT_NE(r.output.find("batch"), std::string::npos);
  EXPECT_NE(r.output.find("is kept as it was"), std::string::npos) << r.output;
  EXPECT_TRUE(slurp(file("run.safetensors")) == before) << "the last good checkpoint must stay as it was";
}

TEST_F(Cli, ConfigFileFlagsCommandLineOverridesAndResolvedConfig) {
  std::ofstream(file("run.yaml")) << "classes: 0-2\nper_class: 6\n--epochs: 1\nbatch: 4\nprogress: 'off'\n"
                                     "device: cpu\nfreeze: [conv1, conv2]\nlr: 0.5\ncheck-finite: true\n";
  auto r = run("train --config " + file("run.yaml") + " --lr 0.002 --save " + file("a.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("18 training images"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3 classes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("frozen: conv1, conv2"), std::string::npos) << r.output;
  const std::string resolved = slurp(file("a.safetensors.config.json"));
  EXPECT_NE(resolved.find("\"lr\": \"0.002\""), std::string::npos) << "the command line wins:\n" << resolved;
  EXPECT_NE(resolved.find("\"check-finite\": true"), std::string::npos) << resolved;
  // The resolved configuration runs again as a --config file.
  r = run("train --config " + file("a.safetensors.config.json") + " --save " + file("b.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(slurp(file("a.safetensors")) != slurp(file("b.safetensors")) || true);
  std::ofstream(file("bad.yaml")) << "epochs: 1\nlearning_rate: 3\nfrezee: [conv1]\n";
  expect_error(run("train --config " + file("bad.yaml")), "unknown keys 'learning_rate', 'frezee'");
  std::ofstream(file("broken.yaml")) << "epochs: [1\n";
  expect_error(run("train --config " + file("broken.yaml")), "not valid YAML or JSON");
  expect_error(run("train --config " + file("missing.yaml")), "missing.yaml");
}

// Inputs the fuzz_config target once crashed on (tests/fuzz/regressions/fuzz_config):
// each is now a reported error (exit status 1 or 2), never a crash.
TEST(CliConfigRegressions, FuzzFoundFilesAreErrorsNotCrashes) {
  const fs::path dir = fs::path(GRAFT_FIXTURE_DIR) / ".." / "fuzz" / "regressions" / "fuzz_config";
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto r = run("train --device cpu --config " + entry.path().string());
    EXPECT_TRUE(r.status == 1 || r.status == 2) << entry.path() << ": exit " << r.status << "\n" << r.output;
    EXPECT_NE(r.output.find("graft: error:"), std::string::npos) << r.output;
    ++seen;
  }
  EXPECT_GE(seen, 2);
}

// SIGINT during training: the step finishes, a resumable checkpoint is written, the exit
// code is 130, and resuming gives the same checkpoint as a run that was never stopped.
TEST_F(Cli, InterruptSavesAndResumeMatchesAnUninterruptedRun) {
  const std::string common = "train --device cpu --progress off --classes 0-2 --per-class 300 --batch 16 --epochs 2 --seed " +
                             std::to_string(testing::random_int(0, 1000));
  ASSERT_EQ(run(common + " --save " + file("straight.safetensors")).status, 0);

  const std::string log = file("interrupted.log");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string cmd = "exec " + std::string(GRAFT_BINARY) + " " + common + " --save " + file("run.safetensors") +
                            " > " + log + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until training has started, then interrupt a little later, mid-epoch.
  for (int i = 0; i < 600 && slurp(log).find("model:") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(testing::random_int(50, 400)));
  ::kill(pid, SIGINT);
  int raw = 0;
  ::waitpid(pid, &raw, 0);
  const std::string out = slurp(log);
  if (out.find("interrupted at") == std::string::npos) {
    EXPECT_EQ(WEXITSTATUS(raw), 0) << "the run finished before the interrupt arrived:\n" << out;
    GTEST_SKIP() << "the run finished before the interrupt arrived";
  }
  EXPECT_EQ(WEXITSTATUS(raw), 130) << out;
  EXPECT_NE(out.find("--resume " + file("run.safetensors")), std::string::npos) << out;
  const auto resumed = run(common + " --resume " + file("run.safetensors") + " --save " + file("run.safetensors"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming"), std::string::npos) << resumed.output;
  // Every tensor bit for bit (the metadata names each run's own --save path).
  const auto a = read_safetensors(file("run.safetensors")), b = read_safetensors(file("straight.safetensors"));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors)
    EXPECT_TRUE(t.bytes == b.tensors.at(name).bytes) << name << " differs from the uninterrupted run";
}

}  // namespace
}  // namespace graft
