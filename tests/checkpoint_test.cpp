// Checkpoints through the model: round trips, partial loads and their report, and the
// PyTorch layout at the boundary (OIHW conv weights; dense columns after a flatten in
// CHW order), checked by an independent NCHW forward written here.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::unique_ptr<Model> make(MemoryPool& pool, int classes, uint64_t seed, int side = 8) {
  return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{side, side, 1}, .num_classes = classes, .seed = seed}, pool);
}

TEST(Checkpoint, RoundTripRestoresParametersAndLogits) {
  TempDir dir;
  HostPool pool;
  auto a = make(pool, 5, testing::test_seed());
  auto b = make(pool, 5, testing::test_seed() + 1);
  const auto x = testing::random_floats(3 * 64, 0, 1);
  save_checkpoint(dir.file("a.safetensors"), *a, nullptr, {}, CheckpointInfo{7, 2, {"a", "b", "c", "d", "e"}, "{\"x\":1}"});
  const auto file = read_safetensors(dir.file("a.safetensors"));
  const auto report = load_parameters(*b, file, "a.safetensors", LoadOptions{true, {}});
  EXPECT_EQ(report.loaded.size(), a->params().size());
  for (size_t p = 0; p < a->params().size(); ++p)
    EXPECT_EQ(0, std::memcmp(a->param_data(p), b->param_data(p), size_t(a->params()[p].spec.shape.numel()) * 4))
        << a->params()[p].name;
  EXPECT_EQ(testing::eval_logits(*a, x, 3), testing::eval_logits(*b, x, 3));
  const auto info = read_checkpoint_info(file);
  EXPECT_EQ(info.step, 7);
  EXPECT_EQ(info.epoch, 2);
  EXPECT_EQ(info.class_names.size(), 5u);
  EXPECT_EQ(file.metadata.at("architecture"), "fmnist_cnn");
  EXPECT_EQ(file.metadata.at("format"), kCheckpointFormat);
}

TEST(Checkpoint, PartialLoadReportsWhatItSkipped) {
  TempDir dir;
  HostPool pool;
  auto src = make(pool, 5, testing::test_seed());
  auto dst = make(pool, 3, testing::test_seed() + 1);
  save_checkpoint(dir.file("src.safetensors"), *src, nullptr, {}, {});
  const auto file = read_safetensors(dir.file("src.safetensors"));
  const auto r = load_parameters(*dst, file, "src.safetensors", {});
  EXPECT_EQ(r.loaded.size(), 6u);  // conv1, conv2, fc1 weight + bias
  ASSERT_EQ(r.shape_mismatch.size(), 2u);
  EXPECT_EQ(r.shape_mismatch[0], "fc2.bias: file [5], model [3]");
  EXPECT_EQ(r.shape_mismatch[1], "fc2.weight: file [5, 128], model [3, 128]");
  try {
    load_parameters(*dst, file, "src.safetensors", LoadOptions{true, {}});
    FAIL() << "strict load of a mismatched head must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc2.weight: file [5, 128], model [3, 128]"), std::string::npos) << e.what();
  }
  // --init-only: only the conv layers come from the file.
  auto fresh = make(pool, 5, testing::test_seed() + 2);
  const auto before_fc1 = std::vector<float>(fresh->param_data(4), fresh->param_data(4) + 128);
  const auto only = load_parameters(*fresh, file, "src.safetensors", LoadOptions{false, {"conv*"}});
  EXPECT_EQ(only.loaded.size(), 4u);
  EXPECT_EQ(only.excluded.size(), 4u);
  EXPECT_EQ(0, std::memcmp(fresh->param_data(4), before_fc1.data(), 128 * 4));
}

TEST(Checkpoint, OptimizerStateRoundTrip) {
  TempDir dir;
  HostPool pool;
  auto m = make(pool, 4, testing::test_seed());
  ExecutorOptions o;
  o.batch = 2;
  o.frozen = resolve_freeze_patterns(*m, {"conv1"});
  Executor ex(*m, o);
  Optimizer opt(OptimizerConfig{}, ex.trainable_count(), pool);
  const auto x = testing::random_floats(2 * 64, 0, 1);
  std::copy(x.begin(), x.end(), ex.input());
  ex.labels()[0] = 1;
  ex.labels()[1] = 3;
  for (int s = 0; s < 2; ++s) {
    ex.forward(2, true, s);
    ex.backward(2);
    opt.step(ex.trainable_segments(), 1e-3f);
  }
  save_checkpoint(dir.file("c.safetensors"), *m, &opt, ex.trainable_segments(), {});
  const auto file = read_safetensors(dir.file("c.safetensors"));
  EXPECT_TRUE(file.tensors.count("optimizer.exp_avg.conv2.weight"));
  EXPECT_FALSE(file.tensors.count("optimizer.exp_avg.conv1.weight")) << "frozen layers have no optimizer state";
  Optimizer restored(OptimizerConfig{}, ex.trainable_count(), pool);
  load_optimizer_state(restored, ex.trainable_segments(), *m, file, "c.safetensors");
  EXPECT_EQ(restored.step_count(), 2);
  for (size_t s = 0; s < 2; ++s)
    EXPECT_EQ(0, std::memcmp(restored.state(s), opt.state(s), size_t(restored.state_count()) * sizeof(float)));
}

TEST(Checkpoint, TruncatedOrForeignFilesAreNamedErrors) {
  TempDir dir;
  HostPool pool;
  auto m = make(pool, 4, testing::test_seed());
  save_checkpoint(dir.file("ok.safetensors"), *m, nullptr, {}, {});
  const auto size = fs::file_size(dir.file("ok.safetensors"));
  fs::copy_file(dir.file("ok.safetensors"), dir.file("cut.safetensors"));
  fs::resize_file(dir.file("cut.safetensors"), size - 100);
  try {
    read_safetensors(dir.file("cut.safetensors"));
    FAIL() << "a truncated checkpoint must not load";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
  }
  SafetensorsFile foreign;
  foreign.tensors["features.0.weight"] = SafetensorsTensor{"F32", {2}, std::vector<uint8_t>(8, 0)};
  EXPECT_THROW(load_parameters(*m, foreign, "vgg.safetensors", {}), Error);
}

// Independent NCHW forward of fmnist_cnn from PyTorch-layout tensors, in double.
std::vector<double> torch_style_forward(const SafetensorsFile& f, const std::vector<float>& nhwc, int n, int side,
                                        int classes) {
  auto T = [&](const std::string& k) { return f.tensors.at(k).to_floats(); };
  // NHWC input -> NCHW, C = 1.
  std::vector<double> x(nhwc.begin(), nhwc.end());
  int c = 1, h = side, w = side;
  auto conv_relu_pool = [&](const std::string& name, int out) {
    const auto W = T(name + ".weight"), B = T(name + ".bias");
    std::vector<double> y(size_t(n) * out * h * w);
    for (int b = 0; b < n; ++b)
      for (int o = 0; o < out; ++o)
        for (int i = 0; i < h; ++i)
          for (int j = 0; j < w; ++j) {
            double s = B[o];
            for (int ci = 0; ci < c; ++ci)
              for (int di = 0; di < 3; ++di)
                for (int dj = 0; dj < 3; ++dj) {
                  const int ii = i + di - 1, jj = j + dj - 1;
                  if (ii < 0 || jj < 0 || ii >= h || jj >= w) continue;
                  s += W[((o * c + ci) * 3 + di) * 3 + dj] * x[((size_t(b) * c + ci) * h + ii) * w + jj];
                }
            y[((size_t(b) * out + o) * h + i) * w + j] = std::max(0.0, s);
          }
    std::vector<double> p(size_t(n) * out * (h / 2) * (w / 2));
    for (int b = 0; b < n; ++b)
      for (int o = 0; o < out; ++o)
        for (int i = 0; i < h / 2; ++i)
          for (int j = 0; j < w / 2; ++j) {
            double m = -1e300;
            for (int di = 0; di < 2; ++di)
              for (int dj = 0; dj < 2; ++dj) m = std::max(m, y[((size_t(b) * out + o) * h + 2 * i + di) * w + 2 * j + dj]);
            p[((size_t(b) * out + o) * (h / 2) + i) * (w / 2) + j] = m;
          }
    x = p;
    c = out;
    h /= 2;
    w /= 2;
  };
  // The input as NCHW (C = 1: same memory).
  conv_relu_pool("conv1", 32);
  conv_relu_pool("conv2", 64);
  auto dense = [&](const std::string& name, int in, int out, bool relu) {
    const auto W = T(name + ".weight"), B = T(name + ".bias");
    std::vector<double> y(size_t(n) * out);
    for (int b = 0; b < n; ++b)
      for (int o = 0; o < out; ++o) {
        double s = B[o];
        for (int i = 0; i < in; ++i) s += W[size_t(o) * in + i] * x[size_t(b) * in + i];
        y[size_t(b) * out + o] = relu ? std::max(0.0, s) : s;
      }
    x = y;
  };
  dense("fc1", c * h * w, 128, true);  // x is NCHW-flattened: PyTorch's order
  dense("fc2", 128, classes, false);
  return x;
}

TEST(Checkpoint, LayoutsMatchPyTorchsConventions) {
  TempDir dir;
  HostPool pool;
  const int side = 12, classes = 3, n = 2;
  auto m = make(pool, classes, testing::test_seed(), side);
  save_checkpoint(dir.file("m.safetensors"), *m, nullptr, {}, {});
  const auto f = read_safetensors(dir.file("m.safetensors"));
  EXPECT_EQ(Shape(f.tensors.at("conv2.weight").shape), (Shape{64, 32, 3, 3}));
  const auto x = testing::random_floats(size_t(n) * side * side, 0, 1);
  const auto ours = testing::eval_logits(*m, x, n);
  const auto theirs = torch_style_forward(f, x, n, side, classes);
  std::vector<float> theirs_f(theirs.begin(), theirs.end());
  EXPECT_LT(testing::relative_error(ours, theirs_f), 1e-5);
}

}  // namespace
}  // namespace graft
