// NVTX ranges seen from outside, without a GPU: `graft train` runs with tests/nvtx_injection.cpp
// as its NVTX tool (NVTX_INJECTION64_PATH), which logs every push and pop; the test checks
// the log against the model: per step its layers' forwards, the loss, backwards only where
// a gradient is needed (none for the frozen base: the frozen-layer guarantee from outside),
// the optimizer; around them the data waits and the checkpoint write. Skips visibly in a
// build without the NVTX headers.
#include <fnmatch.h>

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "layers/zoo.h"
#include "runtime/memory_pool.h"
#include "runtime/trace.h"
#include "tests/graft_program.h"
#include "tests/idx_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

// A range as the tool logged it, with the ranges pushed while it was open.
struct LoggedRange {
  std::string domain, name;
  std::vector<LoggedRange> children;
};

// Rebuilds the range trees per thread from the log; fails the test on a pop with nothing
// open or a range still open at the end.
std::vector<LoggedRange> parse_log(const std::string& text) {
  std::vector<LoggedRange> top;
  std::map<std::string, std::vector<LoggedRange>> open;  // per thread: the open ranges, innermost last
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string what, thread, domain;
    fields >> what >> thread >> domain;
    auto& stack = open[thread];
    if (what == "push") {
      std::string name;
      std::getline(fields >> std::ws, name);
      stack.push_back({domain, name, {}});
    } else if (what == "pop") {
      if (stack.empty()) {
        ADD_FAILURE() << "a pop with no open range: " << line;
        continue;
      }
      EXPECT_EQ(domain, stack.back().domain) << "popped in another domain than pushed: " << line;
      LoggedRange done = std::move(stack.back());
      stack.pop_back();
      (stack.empty() ? top : stack.back().children).push_back(std::move(done));
    } else {
      ADD_FAILURE() << "unexpected log line: " << line;
    }
  }
  for (const auto& [thread, stack] : open)
    for (const auto& r : stack) ADD_FAILURE() << "range '" << r.name << "' was never popped (thread " << thread << ")";
  return top;
}

std::vector<std::string> names(const std::vector<LoggedRange>& ranges) {
  std::vector<std::string> out;
  for (const auto& r : ranges) out.push_back(r.name);
  return out;
}

// Sets an environment variable for the guard's lifetime (the child graft inherits it).
struct ScopedEnv {
  std::string name;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) { ::setenv(name.c_str(), value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

struct InfoRow {
  std::string name;
  bool backward = false;
};

// `graft info`'s layer rows: "   3  conv2   conv2d ... frozen    no".
std::vector<InfoRow> info_rows(const std::string& output) {
  std::vector<InfoRow> rows;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    size_t index = 0;
    InfoRow row;
    if (!(fields >> index >> row.name) || index != rows.size()) continue;
    row.backward = !(line.size() >= 3 && line.compare(line.size() - 3, 3, " no") == 0);
    rows.push_back(row);
  }
  return rows;
}

TEST(Nvtx, TrainingRangesShowStepsLayersAndTheFrozenBase) {
#ifndef GRAFT_NVTX_INJECTION
  GTEST_SKIP() << "built without the CUDA toolkit's NVTX headers (nvtx3/nvToolsExt.h): graft emits no NVTX ranges";
#else
  ASSERT_TRUE(trace::available()) << "the injection library was built but graft_core has no NVTX";
  testing::TempDir dir;
  // A Fashion-MNIST-shaped training split of random images and labels.
  const int examples = testing::random_int(9, 30);
  const int batch = testing::random_int(3, 8);
  std::vector<uint8_t> pixels(static_cast<size_t>(examples) * 28 * 28), labels(static_cast<size_t>(examples));
  for (auto& p : pixels) p = static_cast<uint8_t>(testing::random_int(0, 255));
  for (auto& l : labels) l = static_cast<uint8_t>(testing::random_int(0, 9));
  testing::write_plain(dir.file("train-images-idx3-ubyte"), testing::idx_bytes({uint32_t(examples), 28, 28}, pixels));
  testing::write_plain(dir.file("train-labels-idx1-ubyte"), testing::idx_bytes({uint32_t(examples)}, labels));

  // The frozen base: both convolutions, or the first only (then conv2 trains).
  const std::string freeze = testing::random_int(0, 1) ? "conv*" : "conv1";
  const std::string common = "--device cpu --model fmnist_cnn --data-dir '" + dir.str() + "' --freeze '" + freeze +
                             "' --batch " + std::to_string(batch) + " --frozen-chunk off";
  const auto info = testing::run_graft("info " + common);
  ASSERT_EQ(info.status, 0) << info.output;
  const std::vector<InfoRow> rows = info_rows(info.output);

  // The layers and their kinds, from the zoo; the backward set from the rule itself: every
  // node from the first one with trainable parameters on (fmnist_cnn is a chain).
  HostPool pool;
  const auto model = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{28, 28, 1}}, pool);
  ASSERT_EQ(rows.size(), size_t(model->num_nodes())) << info.output;
  std::vector<std::string> forward, backward;
  int first_trainable = -1;
  for (int k = 0; k < model->num_nodes(); ++k) {
    const auto& node = model->nodes()[size_t(k)];
    ASSERT_EQ(rows[size_t(k)].name, node.name) << info.output;
    if (first_trainable < 0 && !model->node_params(k).empty() && fnmatch(freeze.c_str(), node.name.c_str(), 0) != 0)
      first_trainable = k;
    EXPECT_EQ(rows[size_t(k)].backward, first_trainable >= 0) << "graft info, layer " << node.name << ":\n" << info.output;
    forward.push_back("forward/" + node.name + " " + node.layer->kind());
  }
  ASSERT_GT(first_trainable, 0) << "the test needs a frozen base below a trainable layer";
  for (int k = model->num_nodes() - 1; k >= first_trainable; --k)
    backward.push_back("backward/" + model->nodes()[size_t(k)].name + " " + model->nodes()[size_t(k)].layer->kind());

  const std::string log_path = dir.file("nvtx.log");
  testing::ProgramResult train;
  {
    const ScopedEnv injection("NVTX_INJECTION64_PATH", GRAFT_NVTX_INJECTION);
    const ScopedEnv log("GRAFT_NVTX_LOG", log_path);
    train = testing::run_graft("train " + common + " --progress off --epochs 1 --cache-features off --seed " +
                               std::to_string(testing::random_int(0, 1000)) + " --save '" + dir.file("c.safetensors") + "'");
  }
  ASSERT_EQ(train.status, 0) << train.output;
  const std::string text = testing::slurp(log_path);
  ASSERT_FALSE(text.empty()) << "the NVTX tool recorded nothing: was it loaded? graft said:\n" << train.output;
  const std::vector<LoggedRange> top = parse_log(text);

  // Top level: a data wait before every step and one that finds the epoch's end, then the
  // checkpoint. Every range is in the "graft" domain.
  const int steps = (examples + batch - 1) / batch;
  std::vector<std::string> expected_top;
  for (int s = 0; s < steps; ++s) {
    expected_top.push_back("data wait");
    expected_top.push_back("step");
  }
  expected_top.push_back("data wait");
  expected_top.push_back("checkpoint write");
  EXPECT_EQ(names(top), expected_top) << examples << " examples in batches of " << batch;

  // Inside each step: every layer's forward in order, the loss, the backward of exactly the
  // layers above the frozen base (last first), the optimizer.
  std::vector<std::string> expected_step = forward;
  expected_step.push_back("loss");
  expected_step.insert(expected_step.end(), backward.begin(), backward.end());
  expected_step.push_back("optimizer");
  int seen_steps = 0;
  for (const auto& r : top) {
    EXPECT_EQ(r.domain, "graft") << r.name;
    for (const auto& c : r.children) {
      EXPECT_EQ(c.domain, "graft") << c.name;
      EXPECT_TRUE(c.children.empty()) << c.name << " has ranges inside it";
      EXPECT_FALSE(c.name.starts_with("backward/") && fnmatch(freeze.c_str(), c.name.substr(9, c.name.find(' ') - 9).c_str(), 0) == 0)
          << "a frozen layer ran its backward: " << c.name;
    }
    if (r.name != "step") continue;
    ++seen_steps;
    EXPECT_EQ(names(r.children), expected_step) << "step " << seen_steps << ", --freeze " << freeze;
  }
  EXPECT_EQ(seen_steps, steps);
#endif
}

}  // namespace
}  // namespace graft
