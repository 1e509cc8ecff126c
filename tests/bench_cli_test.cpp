// `graft bench` end to end on the CPU, at a tiny size: the JSON it prints has
// pytorch_baseline.py's keys with sane values, the FLOP count agrees with the model's
// layers in every mode, the frozen mode trains only the head, and settings it cannot honour
// are errors that name the flag. Speed itself is measured in bench/, never asserted here.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "layers/zoo.h"
#include "runtime/memory_pool.h"
#include "tests/graft_program.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft::testing {
namespace {

using nlohmann::json;

struct Tiny {
  std::string model = "vgg11";
  int input = 32, batch = 2, classes = 3 + random_int(0, 4);
  std::string args(const std::string& mode) const {
    return "bench --device cpu --model " + model + " --input " + std::to_string(input) + " --batch " +
           std::to_string(batch) + " --classes " + std::to_string(classes) +
           " --width-divisor 8 --steps 3 --warmup 1 --json --seed " + std::to_string(test_seed() % 1000) +
           " --mode " + mode;
  }
  // The zoo model bench builds, less its top (the caller sets include_top or head).
  ModelSpec spec() const {
    ModelSpec s;
    s.architecture = model;
    s.sample_shape = Shape{input, input, 3};
    s.num_classes = classes;
    s.width_divisor = 8;
    return s;
  }
};

json bench(const Tiny& t, const std::string& mode) {
  const ProgramResult r = run_graft(t.args(mode));
  EXPECT_EQ(r.status, 0) << r.output;
  try {
    return json::parse(r.output);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << r.output;
    return {};
  }
}

// Multiply-accumulates per image of the backbone's convolutions and of a dense chain.
int64_t conv_macs(const Model& m) {
  const auto shapes = m.infer_shapes(1);
  int64_t macs = 0;
  for (int n = 0; n < m.num_nodes(); ++n) {
    const Layer& l = *m.nodes()[size_t(n)].layer;
    if (l.kind() == "conv2d") macs += l.param_specs()[0].shape.numel() * shapes[size_t(n)][1] * shapes[size_t(n)][2];
  }
  return macs;
}

TEST(BenchCli, JsonKeysAndFlopsAgreeWithTheModelInEveryMode) {
  const Tiny t;
  const json frozen = bench(t, "frozen"), full = bench(t, "full"), cached = bench(t, "cached");
  ASSERT_FALSE(frozen.is_null() || full.is_null() || cached.is_null());

  for (const json* j : {&frozen, &full, &cached}) {
    for (const char* key : {"tool", "model", "input", "batch", "mode", "precision", "images_per_second", "ms_per_step",
                            "peak_bytes", "flops_per_image", "tflops", "trainable_parameters", "final_loss",
                            "device", "command"})
      EXPECT_TRUE(j->contains(key)) << key << " missing in " << j->dump();
    EXPECT_EQ((*j)["tool"], "graft");
    EXPECT_GT((*j)["images_per_second"].get<double>(), 0.0);
    const json& ms = (*j)["ms_per_step"];
    EXPECT_LE(ms["p10"].get<double>(), ms["p50"].get<double>());
    EXPECT_LE(ms["p50"].get<double>(), ms["p90"].get<double>());
    EXPECT_GT((*j)["peak_bytes"].get<int64_t>(), 0);
    EXPECT_TRUE(std::isfinite((*j)["final_loss"].get<double>()));
  }

  // The backbone's convolutions, counted here from the zoo model; the head is
  // flatten (features F) -> dense 1024 -> relu -> dense K.
  HostPool pool;
  ModelSpec s = t.spec();
  s.include_top = false;
  auto backbone = build_model(s, pool);
  const int64_t base = conv_macs(*backbone);
  const int64_t features = backbone->infer_shapes(1).back().numel();
  const int64_t head = features * 1024 + 1024 * t.classes;
  EXPECT_EQ(cached["flops_per_image"].get<int64_t>(), 6 * head);
  EXPECT_EQ(frozen["flops_per_image"].get<int64_t>(), 2 * base + 6 * head);
  EXPECT_EQ(full["flops_per_image"].get<int64_t>(), 6 * (base + head));

  // Frozen and cached train the head only (weights and biases); full trains everything.
  const int64_t head_params = features * 1024 + 1024 + 1024 * t.classes + t.classes;
  EXPECT_EQ(frozen["trainable_parameters"].get<int64_t>(), head_params);
  EXPECT_EQ(cached["trainable_parameters"].get<int64_t>(), head_params);
  EXPECT_EQ(full["trainable_parameters"].get<int64_t>(), head_params + backbone->parameter_count());
  // A frozen backbone keeps no activations for backward: less memory than training it.
  EXPECT_LT(frozen["peak_bytes"].get<int64_t>(), full["peak_bytes"].get<int64_t>());
  EXPECT_LT(cached["peak_bytes"].get<int64_t>(), frozen["peak_bytes"].get<int64_t>());
}

TEST(BenchCli, LayersTimesEveryNodeAndFrozenOnesHaveNoBackward) {
  const Tiny t;
  const ProgramResult r = run_graft(t.args("frozen") + " --layers");
  ASSERT_EQ(r.status, 0) << r.output;
  const json j = json::parse(r.output);
  ASSERT_TRUE(j.contains("layers")) << r.output;
  HostPool pool;
  ModelSpec s = t.spec();
  s.head = "flatten,dense:1024,relu,dense:N";
  const auto model = build_model(s, pool);
  ASSERT_EQ(j["layers"].size(), size_t(model->num_nodes()));
  int dense_with_backward = 0;
  for (int n = 0; n < model->num_nodes(); ++n) {
    const json& row = j["layers"][size_t(n)];
    EXPECT_EQ(row["name"], model->nodes()[size_t(n)].name);
    const double fwd = row["cpu"]["forward_ms"], bwd = row["cpu"]["backward_ms"];
    EXPECT_GE(fwd, 0.0);
    const bool head = model->nodes()[size_t(n)].name.rfind("head.", 0) == 0;
    if (!head) {
      EXPECT_EQ(bwd, 0.0) << row.dump() << ": a frozen layer ran backward";
    }
    if (head && row["kind"] == "dense" && bwd > 0) ++dense_with_backward;
  }
  EXPECT_EQ(dense_with_backward, 2);
}

// --frozen-chunk: the frozen layers' activations planned for a chunk, so the planned and
// measured peaks drop; the same numbers otherwise (reference-equal math is frozen_chunk_test's).
TEST(BenchCli, FrozenChunksLowerThePeak) {
  Tiny t;
  t.batch = 8;
  auto run = [&](const std::string& chunk) {
    const ProgramResult r = run_graft(t.args("frozen") + " --frozen-chunk " + chunk);
    EXPECT_EQ(r.status, 0) << r.output;
    return json::parse(r.output);
  };
  const json whole = run("off"), chunked = run("2");
  EXPECT_EQ(whole["frozen_chunk"], 0);
  EXPECT_EQ(chunked["frozen_chunk"], 2);
  EXPECT_LT(chunked["planned_peak_bytes"].get<int64_t>(), whole["planned_peak_bytes"].get<int64_t>());
  EXPECT_LT(chunked["peak_bytes"].get<int64_t>(), whole["peak_bytes"].get<int64_t>());
  EXPECT_EQ(chunked["flops_per_image"], whole["flops_per_image"]);
  const ProgramResult bad = run_graft(t.args("full") + " --frozen-chunk 2");
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("--frozen-chunk 2: there is no frozen prefix"), std::string::npos) << bad.output;
}

// --precision bf16 runs (emulated on the CPU): the same work, a loss near fp32's.
TEST(BenchCli, Bf16RunsAndSaysSo) {
  const Tiny t;
  const json fp32 = bench(t, "frozen");
  const ProgramResult r = run_graft(t.args("frozen") + " --precision bf16");
  ASSERT_EQ(r.status, 0) << r.output;
  const json bf16 = json::parse(r.output);
  EXPECT_EQ(bf16["precision"], "bf16");
  EXPECT_EQ(bf16["flops_per_image"], fp32["flops_per_image"]);
  const double a = fp32["final_loss"], b = bf16["final_loss"];
  EXPECT_NE(a, b);
  EXPECT_NEAR(a, b, 0.05 * a);
}

// --data: a real folder decoded in the timing; normalizing in the workers or in the step
// (--augment-on) gives the same run.
TEST(BenchCli, DataFolderWithTheNormalizationInEitherPlace) {
  TempDir dir;
  write_image_folder(dir.path / "data", {"a", "b"}, 5, 20, 50);
  const Tiny t;
  std::vector<json> runs;
  for (const char* where : {"cpu", "device"}) {
    const ProgramResult r =
        run_graft(t.args("frozen") + " --data " + (dir.path / "data").string() + " --workers 1 --augment-on " + where);
    ASSERT_EQ(r.status, 0) << r.output;
    runs.push_back(json::parse(r.output.substr(r.output.find('{'))));
    EXPECT_EQ(runs.back()["augment_on"], where);
  }
  EXPECT_EQ(runs[0]["final_loss"], runs[1]["final_loss"]);
}

TEST(BenchCli, SettingsItCannotHonourAreNamedErrors) {
  const Tiny t;
  ProgramResult r = run_graft(t.args("frozen") + " --precision tf32");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--precision tf32"), std::string::npos) << r.output;
  r = run_graft(t.args("cached") + " --data /nonexistent-folder");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--mode cached"), std::string::npos) << r.output;
  r = run_graft(t.args("sideways"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--mode"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace graft::testing
