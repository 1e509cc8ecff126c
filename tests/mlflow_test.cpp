// tools/graft-mlflow: a tiny graft run recorded in MLflow through MLflow's own client, then
// read back with MlflowClient (tests/interop/read_mlflow.py): the parameters equal the
// resolved configuration, the metrics the --metrics rows (step = epoch), and the checkpoint,
// class map, configuration, metrics file and TensorBoard folder are its artifacts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/graft_program.h"
#include "tests/python_env.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::ProgramResult;

const fs::path kSource = fs::path(GRAFT_FIXTURE_DIR).parent_path().parent_path();

std::string shell_quoted(const std::string& s) { return "'" + s + "'"; }

ProgramResult graft_mlflow(const std::string& args) {
  return testing::run_python(shell_quoted((kSource / "tools" / "graft-mlflow").string()), args);
}

// The run as MlflowClient reads it back.
nlohmann::json read_run(const std::string& uri, const std::string& run_id) {
  const auto r = testing::run_python(shell_quoted((kSource / "tests" / "interop" / "read_mlflow.py").string()),
                                     shell_quoted(uri) + " " + run_id);
  EXPECT_EQ(r.status, 0) << r.output;
  const auto start = r.output.find('{');
  if (r.status != 0 || start == std::string::npos) return nlohmann::json::object();
  return nlohmann::json::parse(r.output.substr(start));
}

// The last line of the script's output: the run id (--print-run-id).
std::string last_line(const std::string& output) {
  std::string s = output;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.substr(s.rfind('\n') == std::string::npos ? 0 : s.rfind('\n') + 1);
}

std::vector<nlohmann::json> read_jsonl(const std::string& file) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

void expect_contains(const std::string& output, const std::vector<std::string>& parts) {
  for (const auto& p : parts) EXPECT_NE(output.find(p), std::string::npos) << "missing '" << p << "' in:\n" << output;
}

class Mlflow : public ::testing::Test {
 protected:
  void SetUp() override {
    epochs_ = testing::random_int(2, 3);
    const auto r = testing::run_graft("train --device cpu --progress off --classes 0-2 --per-class 8 --batch 8 --epochs " +
                                      std::to_string(epochs_) + " --seed " + std::to_string(testing::random_int(0, 1000)) +
                                      " --lr " + std::to_string(0.0005 * testing::random_int(1, 4)) + " --save " +
                                      checkpoint() + " --metrics " + metrics());
    ASSERT_EQ(r.status, 0) << r.output;
    fs::create_directories(dir_.path / "tb" / "sub");
    std::ofstream(dir_.path / "tb" / "sub" / "events.out.tfevents.1") << "bytes";
    uri_ = "sqlite:///" + dir_.file("mlruns.db");  // MLflow's default store
  }
  std::string checkpoint() const { return dir_.file("run.safetensors"); }
  std::string metrics() const { return dir_.file("run.jsonl"); }

  // Records the run and checks everything MlflowClient reads back.
  void record_and_check(const std::string& extra) {
    const auto r = graft_mlflow("--checkpoint " + checkpoint() + " --metrics " + metrics() + " --tensorboard " +
                                dir_.file("tb") + " --tracking-uri " + shell_quoted(uri_) + " --artifact-location " + shell_quoted(dir_.file("artifacts")) +
                                " --experiment graft-test --print-run-id" + extra);
    ASSERT_EQ(r.status, 0) << r.output;
    const auto run = read_run(uri_, last_line(r.output));
    EXPECT_EQ(run["status"], "FINISHED");
    EXPECT_EQ(run["experiment"], "graft-test");

    // Parameters: the resolved configuration, key for key.
    const auto config = nlohmann::json::parse(testing::slurp(checkpoint() + ".config.json"));
    ASSERT_TRUE(config.is_object());
    EXPECT_EQ(run["params"].size(), config.size());
    for (const auto& [key, value] : config.items()) {
      ASSERT_TRUE(run["params"].contains(key)) << key;
      EXPECT_EQ(run["params"][key].get<std::string>(), value.is_string() ? value.get<std::string>() : value.dump()) << key;
    }
    EXPECT_EQ(run["params"]["epochs"], std::to_string(epochs_));

    // Metrics: every numeric field of every row, at step = epoch.
    const auto rows = read_jsonl(metrics());
    ASSERT_EQ(rows.size(), size_t(epochs_));
    std::set<std::string> keys;
    for (const auto& row : rows)
      for (const auto& [key, value] : row.items())
        if (key != "epoch" && value.is_number()) keys.insert(key);
    EXPECT_EQ(run["metrics"].size(), keys.size()) << run["metrics"].dump();
    for (const auto& key : keys) {
      const auto& history = run["metrics"][key];
      ASSERT_EQ(history.size(), rows.size()) << key;
      for (size_t i = 0; i < rows.size(); ++i) {
        EXPECT_EQ(history[i][0].get<int>(), rows[i]["epoch"].get<int>()) << key;
        EXPECT_DOUBLE_EQ(history[i][1].get<double>(), rows[i][key].get<double>()) << key << " at epoch " << i + 1;
      }
    }

    // Artifacts: the checkpoint, its class map and configuration, the metrics, the TensorBoard folder.
    const auto artifacts = run["artifacts"].get<std::vector<std::string>>();
    EXPECT_EQ(artifacts, (std::vector<std::string>{"run.jsonl", "run.safetensors", "run.safetensors.classes.json",
                                                   "run.safetensors.config.json", "tensorboard/sub/events.out.tfevents.1"}));
    EXPECT_EQ(run["tags"]["graft.epoch"], std::to_string(epochs_));
  }

  testing::TempDir dir_;
  int epochs_ = 0;
  std::string uri_;
};

TEST_F(Mlflow, RecordsAFinishedRun) { record_and_check(""); }

// --follow on a run that has already finished: it sees every epoch done and stops at once.
TEST_F(Mlflow, FollowEndsWhenTheLastEpochIsCheckpointed) { record_and_check(" --follow --poll 0.1 --idle 60"); }

// --follow started before the run: it waits for the configuration, records each epoch as
// its line appears, and ends when the last epoch is checkpointed.
TEST_F(Mlflow, FollowsARunWhileItTrains) {
  const std::string live = dir_.file("live.safetensors"), rows_file = dir_.file("live.jsonl");
  const int epochs = testing::random_int(3, 4);
  ProgramResult recorder;
  std::thread follow([&] {
    recorder = graft_mlflow("--checkpoint " + live + " --metrics " + rows_file + " --tracking-uri " + shell_quoted(uri_) + " --artifact-location " + shell_quoted(dir_.file("artifacts")) +
                            " --follow --poll 0.05 --idle 120 --print-run-id");
  });
  const auto r = testing::run_graft("train --device cpu --progress off --classes 0-2 --per-class 8 --batch 8 --epochs " +
                                    std::to_string(epochs) + " --save " + live + " --metrics " + rows_file);
  follow.join();
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(recorder.status, 0) << recorder.output;
  EXPECT_NE(recorder.output.find("all " + std::to_string(epochs) + " epochs done"), std::string::npos) << recorder.output;
  const auto run = read_run(uri_, last_line(recorder.output));
  EXPECT_EQ(run["status"], "FINISHED");
  const auto rows = read_jsonl(rows_file);
  ASSERT_EQ(rows.size(), size_t(epochs));
  ASSERT_EQ(run["metrics"]["loss"].size(), rows.size()) << run.dump();
  for (size_t i = 0; i < rows.size(); ++i)
    EXPECT_DOUBLE_EQ(run["metrics"]["loss"][i][1].get<double>(), rows[i]["loss"].get<double>());
  EXPECT_EQ(run["tags"]["graft.epoch"], std::to_string(epochs));
}

TEST_F(Mlflow, MissingFilesAreNamed) {
  const std::string uri = " --tracking-uri " + shell_quoted(uri_) + " --artifact-location " + shell_quoted(dir_.file("artifacts"));
  auto r = graft_mlflow("--checkpoint " + dir_.file("nope.safetensors") + uri);
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"nope.safetensors", "no such file"});
  r = graft_mlflow("--checkpoint " + checkpoint() + " --metrics " + dir_.file("nope.jsonl") + uri);
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"nope.jsonl", "no such file", "--metrics"});
  r = graft_mlflow("--checkpoint " + checkpoint() + " --tensorboard " + dir_.file("no_tb") + uri);
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"no_tb", "no such folder"});
  // A checkpoint without the configuration beside it (copied elsewhere).
  fs::copy_file(checkpoint(), dir_.path / "alone.safetensors");
  r = graft_mlflow("--checkpoint " + dir_.file("alone.safetensors") + uri);
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"alone.safetensors.config.json", "no such file", "--config"});
  // A metrics line that is not JSON names the file and the line.
  std::ofstream(metrics(), std::ios::app) << "{broken\n";
  r = graft_mlflow("--checkpoint " + checkpoint() + " --metrics " + metrics() + uri);
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"run.jsonl", "line " + std::to_string(epochs_ + 1), "not JSON"});
}

}  // namespace
}  // namespace graft
