// graft export --onnx: zoo models with their own top and with grafted heads, random weights
// and non-trivial BatchNorm statistics saved as a checkpoint, exported by the program and
// checked by tests/interop/check_onnx.py: onnx.checker's full check, opset 17, no dropout or
// training-mode batch norm, and onnxruntime's outputs on fresh NCHW inputs against graft's
// own forward (relative error < 1e-5); sequence models (LSTM, GRU, embedding, the three
// pools) with random lengths as a second input. Also: the metadata, and the named error for
// a layer that has no ONNX form.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "runtime/executor.h"
#include "runtime/memory_pool.h"
#include "runtime/onnx/export.h"
#include "runtime/safetensors.h"
#include "tests/graft_program.h"
#include "tests/python_env.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

using testing::has;

struct ExportCase {
  std::string architecture;
  std::string head;  // "" = the architecture's own top
  int width_divisor = 1;
  int input = 32;    // image models; fmnist_cnn is 28x28x1
  bool no_top = false;
  bool named = true;  // class names in the checkpoint's metadata
};

const std::string kCheckScript = std::string(GRAFT_FIXTURE_DIR) + "/../interop/check_onnx.py";

void write_floats(const std::string& path, const std::vector<float>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  ASSERT_TRUE(out.good()) << path;
}

// Random values in every parameter, and BatchNorm statistics far from their 0 and 1 start,
// so that an export that ignored or misordered them would show.
void randomize(Model& m) {
  float* host = m.host_params();
  for (const ParamInfo& p : m.params()) {
    const size_t n = size_t(p.spec.shape.numel());
    std::vector<float> v;
    if (p.spec.name == "running_var")
      v = testing::random_floats(n, 0.3f, 2.0f);
    else if (p.spec.name == "num_batches_tracked")
      v.assign(n, 7.0f);
    else if (p.spec.name == "running_mean" || m.nodes()[size_t(p.node)].layer->kind() == "batchnorm")
      v = testing::random_floats(n, -0.5f, 0.5f);
    else
      continue;  // conv and dense keep their seeded initialisation
    if (p.spec.name == "weight") v = testing::random_floats(n, 0.5f, 1.5f);
    std::copy(v.begin(), v.end(), host + p.offset);
  }
  m.upload_params();
}

// Saves `model` as graft does (dir/model.safetensors) and runs `graft export` into `onnx`;
// false when it failed. `says`: text its output must hold.
bool save_and_export(const Model& model, const CheckpointInfo& info, testing::TempDir& dir, const std::string& onnx,
                     const std::string& says = "") {
  const std::string checkpoint = dir.file("model.safetensors");
  save_checkpoint(checkpoint, model, nullptr, {}, info);
  const auto r = testing::run_graft("export --onnx " + onnx + " --checkpoint " + checkpoint);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(has(r.output, says)) << r.output;
  return r.status == 0;
}

// Runs check_onnx.py with `args`: its JSON line (the last), or {} when a check failed.
nlohmann::json check_with_onnxruntime(const std::string& args) {
  const auto check = testing::run_python(kCheckScript, args);
  EXPECT_EQ(check.status, 0) << check.output;
  if (check.status != 0) return {};
  const std::string& o = check.output;
  const size_t end = o.find_last_not_of('\n');
  const size_t start = o.rfind('\n', end);
  const size_t from = start == std::string::npos ? 0 : start + 1;
  nlohmann::json j = nlohmann::json::parse(o.substr(from, end + 1 - from));
  EXPECT_LT(j["relative_error"].get<double>(), testing::kFp32Tolerance);
  ::testing::Test::RecordProperty("onnx_relative_error", std::to_string(j["relative_error"].get<double>()));
  return j;
}

// Saves a random model as graft would, exports it, and returns check_onnx.py's JSON line.
nlohmann::json export_and_check(const ExportCase& c) {
  testing::TempDir dir;
  HostPool pool;
  const int classes = 5;
  const Shape sample = c.architecture == "fmnist_cnn" ? Shape{28, 28, 1} : Shape{c.input, c.input, 3};
  ModelSpec spec{c.architecture, sample, classes, testing::test_seed(), c.head, !c.no_top, c.width_divisor};
  auto model = build_model(spec, pool);
  randomize(*model);
  const nlohmann::json config{{"model", c.architecture}, {"head", c.head}, {"no-top", c.no_top},
                              {"width-divisor", std::to_string(c.width_divisor)}, {"input", std::to_string(c.input)},
                              {"normalize", "imagenet"}};
  CheckpointInfo info;
  if (c.named) info.class_names = {"ant", "bee", "cat", "dog", "eel"};
  info.config_json = config.dump();
  const std::string onnx = dir.file("model.onnx");
  if (!save_and_export(*model, info, dir, onnx)) return {};

  // Fresh inputs in ONNX's NCHW; graft's forward takes them as NHWC.
  const int64_t n = 3, h = sample[0], w = sample[1], ch = sample[2];
  const std::vector<float> nchw = testing::random_floats(size_t(n * h * w * ch));
  std::vector<float> nhwc(nchw.size());
  for (int64_t b = 0; b < n; ++b)
    for (int64_t k = 0; k < ch; ++k)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) nhwc[size_t(((b * h + y) * w + x) * ch + k)] = nchw[size_t(((b * ch + k) * h + y) * w + x)];
  std::vector<float> expected = testing::eval_logits(*model, nhwc, n);
  const Shape out = model->infer_shapes(n).back();
  if (out.rank() == 4) {  // a feature map: ONNX gives it NCHW
    std::vector<float> t(expected.size());
    for (int64_t b = 0; b < out[0]; ++b)
      for (int64_t y = 0; y < out[1]; ++y)
        for (int64_t x = 0; x < out[2]; ++x)
          for (int64_t k = 0; k < out[3]; ++k)
            t[size_t(((b * out[3] + k) * out[1] + y) * out[2] + x)] = expected[size_t(((b * out[1] + y) * out[2] + x) * out[3] + k)];
    expected = t;
  }
  write_floats(dir.file("inputs.f32"), nchw);
  write_floats(dir.file("expected.f32"), expected);
  return check_with_onnxruntime(onnx + " " + dir.file("inputs.f32") + " " + dir.file("expected.f32") + " " +
                                std::to_string(n));
}

bool has_op(const nlohmann::json& j, const std::string& op) {
  return j.contains("ops") && std::find(j["ops"].begin(), j["ops"].end(), op) != j["ops"].end();
}

std::string meta(const nlohmann::json& j, const std::string& key) {
  return j.contains("metadata") && j["metadata"].contains(key) ? j["metadata"][key].get<std::string>() : "";
}

TEST(OnnxExport, FmnistCnnMatchesGraft) {
  const auto j = export_and_check({"fmnist_cnn", "", 4});
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j["output"], "logits");
  EXPECT_EQ(j["input_shape"], nlohmann::json({"N", "1", "28", "28"}));
  EXPECT_EQ(meta(j, "graft.input_layout"), "NCHW");
  EXPECT_EQ(meta(j, "graft.channel_order"), "grayscale");
  EXPECT_EQ(nlohmann::json::parse(meta(j, "graft.classes")), nlohmann::json({"ant", "bee", "cat", "dog", "eel"}));
  EXPECT_EQ(meta(j, "graft.version"), "0.1");
}

TEST(OnnxExport, FmnistCnnWithHeadDropsDropout) {
  const auto j = export_and_check({"fmnist_cnn", "flatten,dense:16,relu,dropout:0.5,dense:N", 2});
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j["ops"], nlohmann::json({"Conv", "Flatten", "Gemm", "MaxPool", "Relu"}));
}

// 64 px: VGG's features end at 2x2, so the classifier's flatten order and the adaptive
// pool to 7x7 (not a tiling: the pooling-matrix form) are both exercised.
TEST(OnnxExport, Vgg11MatchesGraft) {
  const auto j = export_and_check({"vgg11", "", 16, 64});
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j["input_shape"], nlohmann::json({"N", "3", "64", "64"}));
  EXPECT_TRUE(has_op(j, "MatMul")) << j["ops"];  // 2x2 to 7x7
  EXPECT_EQ(meta(j, "graft.normalization"), "imagenet");
  EXPECT_EQ(nlohmann::json::parse(meta(j, "graft.mean")).size(), 3u);
  EXPECT_TRUE(has(meta(j, "graft.output"), "no softmax")) << meta(j, "graft.output");
}

// A batch norm over flattened features: its statistics follow PyTorch's CHW order.
TEST(OnnxExport, Vgg11WithHeadMatchesGraft) {
  const auto j = export_and_check({"vgg11", "flatten,bn,dropout:0.3,dense:24,relu,dense:N", 16, 64});
  ASSERT_FALSE(j.empty());
  EXPECT_TRUE(has_op(j, "BatchNormalization")) << j["ops"];
}

TEST(OnnxExport, Vgg11BackboneGivesNchwFeatures) {
  const auto j = export_and_check({"vgg11", "", 16, 64, /*no_top=*/true});
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(j["output"], "features");
  EXPECT_EQ(j["output_shape"], nlohmann::json({3, 32, 2, 2}));
}

// Without class names the metadata names classes by index, and the program says so once.
TEST(OnnxExport, Resnet18MatchesGraft) {
  const auto j = export_and_check({"resnet18", "", 8, 32, false, /*named=*/false});
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(nlohmann::json::parse(meta(j, "graft.classes"))[0], "class 0");
  for (const char* op : {"Add", "BatchNormalization", "GlobalAveragePool", "MaxPool"})
    EXPECT_TRUE(has_op(j, op)) << op << " not in " << j["ops"];
}

TEST(OnnxExport, Resnet18WithHeadMatchesGraft) {
  const auto j = export_and_check({"resnet18", "gap,bn,dropout:0.5,dense:32,relu,dense:N", 8, 32});
  ASSERT_FALSE(j.empty());
}

// Sequence models: a random model saved as graft saves it, exported by the program, and
// onnxruntime fed fresh inputs and random lengths (one example full, the rest 1..steps, the
// padding steps holding values that must not be read) against graft's own forward with
// those lengths.
struct SequenceCase {
  std::string architecture;
  Shape sample;   // [steps, features], or an image [H, W, C] read by rows
  int vocab = 0;  // an embedding's: the inputs are token ids below it
};

nlohmann::json export_and_check_sequence(const SequenceCase& c) {
  testing::TempDir dir;
  HostPool pool;
  const int classes = 4;
  auto model = build_model(ModelSpec{c.architecture, c.sample, classes, testing::test_seed(), ""}, pool);
  CheckpointInfo info;
  info.config_json = nlohmann::json{{"model", c.architecture}}.dump();
  const std::string onnx = dir.file("model.onnx");
  if (!save_and_export(*model, info, dir, onnx, "lengths int32 [N]")) return {};

  const int64_t n = 5, steps = c.sample[0], per_example = c.sample.numel();
  std::vector<float> x = testing::random_floats(size_t(n * per_example));
  if (c.vocab > 0)
    for (auto& id : x) id = float(testing::random_int(0, c.vocab - 1));
  std::vector<int32_t> lengths(static_cast<size_t>(n));
  for (auto& l : lengths) l = testing::random_int(1, int(steps));
  lengths[size_t(testing::random_int(0, int(n) - 1))] = int32_t(steps);
  ExecutorOptions o;
  o.batch = n;
  o.training = false;
  Executor ex(*model, o);
  std::copy(x.begin(), x.end(), ex.input());
  ex.set_lengths(lengths.data(), n);
  ex.forward(n, false, 0);
  const std::vector<float> expected(ex.output(), ex.output() + ex.output_shape(n).numel());

  write_floats(dir.file("inputs.f32"), x);
  write_floats(dir.file("expected.f32"), expected);
  {
    std::ofstream out(dir.file("lengths.i32"), std::ios::binary);
    out.write(reinterpret_cast<const char*>(lengths.data()), std::streamsize(lengths.size() * sizeof(int32_t)));
  }
  nlohmann::json j = check_with_onnxruntime(onnx + " " + dir.file("inputs.f32") + " " + dir.file("expected.f32") +
                                            " " + std::to_string(n) + " " + dir.file("lengths.i32"));
  if (j.empty()) return j;
  EXPECT_EQ(j["input_shape"], nlohmann::json({"N", std::to_string(steps), std::to_string(per_example / steps)}));
  EXPECT_EQ(meta(j, "graft.input_layout"), "NTF");
  return j;
}

TEST(OnnxExport, StackedBidirectionalLstmLastStepMatchesGraft) {
  const auto j = export_and_check_sequence({"lstm:6x2,bi,dropout:0.2,last,dense:N", Shape{7, 3}});
  ASSERT_FALSE(j.empty());
  EXPECT_TRUE(has_op(j, "LSTM")) << j["ops"];
  EXPECT_FALSE(has_op(j, "Dropout")) << j["ops"];
}

TEST(OnnxExport, BidirectionalGruMeanWithHiddenLayerMatchesGraft) {
  const auto j = export_and_check_sequence({"gru:5,bi,mean,dense:8,relu,dense:N", Shape{6, 4}});
  ASSERT_FALSE(j.empty());
  EXPECT_TRUE(has_op(j, "GRU")) << j["ops"];
}

TEST(OnnxExport, EmbeddingLstmFlattenMatchesGraft) {
  const auto j = export_and_check_sequence({"embedding:20x4,pad:0,lstm:5,flatten,dense:N", Shape{5, 1}, 20});
  ASSERT_FALSE(j.empty());
  EXPECT_TRUE(has_op(j, "Gather")) << j["ops"];
}

// Fashion-MNIST's row reader: an image [H, W, C] is ONNX's [N, H, W*C].
TEST(OnnxExport, ImageReadByRowsMatchesGraft) {
  const auto j = export_and_check_sequence({"gru:4x2,bi,flatten,dense:N", Shape{6, 4, 2}});
  ASSERT_FALSE(j.empty());
  EXPECT_EQ(meta(j, "graft.normalization"), "unit");
}

// A checkpoint without input_shape (an older graft's) needs --steps and --features, and says so.
TEST(OnnxExport, SequenceCheckpointWithoutInputShapeNeedsStepsAndFeatures) {
  testing::TempDir dir;
  HostPool pool;
  auto model = build_model(ModelSpec{"gru:3,last,dense:N", Shape{4, 2}, 2, testing::test_seed(), ""}, pool);
  CheckpointInfo info;
  info.config_json = R"({"model": "gru:3,last,dense:N"})";
  save_checkpoint(dir.file("new.safetensors"), *model, nullptr, {}, info);
  SafetensorsFile file = read_safetensors(dir.file("new.safetensors"));
  EXPECT_EQ(file.metadata.at("input_shape"), "[4,2]");
  file.metadata.erase("input_shape");
  std::map<std::string, HostTensor> tensors;
  for (const auto& [name, t] : file.tensors) tensors[name] = t.to_host_tensor();
  const std::string old = dir.file("old.safetensors"), onnx = dir.file("old.onnx");
  write_safetensors(old, tensors, file.metadata);
  auto r = testing::run_graft("export --onnx " + onnx + " --checkpoint " + old);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r.output, old) && has(r.output, "--steps S --features F")) << r.output;
  EXPECT_FALSE(std::filesystem::exists(onnx));
  r = testing::run_graft("export --onnx " + onnx + " --checkpoint " + old + " --steps 4");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r.output, "--steps and --features go together")) << r.output;
  r = testing::run_graft("export --onnx " + onnx + " --checkpoint " + old + " --steps 4 --features 2");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(onnx));
}

// A layer that does not override Layer::export_onnx: the export names it and its kind.
class Swish final : public Layer {
 public:
  using Layer::Layer;
  std::string kind() const override { return "swish"; }
  std::string describe() const override { return "swish"; }
  Shape output_shape(const std::vector<Shape>& inputs) const override { return inputs.at(0); }
  void forward(const ForwardArgs&) override {}
  void backward(const BackwardArgs&) override {}
};

TEST(OnnxExport, LayerWithoutOnnxFormIsNamed) {
  HostPool pool;
  Model m("custom", Shape{28, 28, 1}, pool);
  m.add(std::make_unique<Swish>("act7"));
  m.finalize(1);
  try {
    model_to_onnx(m, {}, "");
    FAIL() << "exported a swish layer";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "act7") && has(e.what(), "swish") && has(e.what(), "ONNX")) << e.what();
  }
}

TEST(OnnxExport, UnwritableDestinationIsAnErrorAndLeavesNoFile) {
  testing::TempDir dir;
  HostPool pool;
  auto model = build_model(ModelSpec{"fmnist_cnn", Shape{28, 28, 1}, 3, 1, "", true, 4}, pool);
  CheckpointInfo info;
  info.config_json = R"({"model": "fmnist_cnn", "width-divisor": "4"})";
  save_checkpoint(dir.file("m.safetensors"), *model, nullptr, {}, info);
  const std::string target = dir.file("missing/out.onnx");
  const auto r = testing::run_graft("export --onnx " + target + " --checkpoint " + dir.file("m.safetensors"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(has(r.output, target)) << r.output;
  EXPECT_FALSE(std::filesystem::exists(target));
  // Sequence flags on an image model are a mistake, named.
  const auto steps = testing::run_graft("export --onnx " + dir.file("out.onnx") + " --checkpoint " +
                                        dir.file("m.safetensors") + " --steps 4 --features 2");
  EXPECT_EQ(steps.status, 1) << steps.output;
  EXPECT_TRUE(has(steps.output, "--steps and --features describe a sequence model's input")) << steps.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.onnx")));
}

}  // namespace
}  // namespace graft
