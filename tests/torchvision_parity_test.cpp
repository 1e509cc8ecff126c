// Parity with torchvision: small VGG-11, ResNet-18 and ResNet-50 built by torchvision's
// own classes (widths divided, names unchanged, random weights and BN statistics) load
// into graft's zoo models with strict name and shape matching and give the same logits;
// BatchNorm2d (training and eval mode) and AdaptiveAvgPool2d against PyTorch. Fixtures
// come from tests/golden/make_torchvision.py (NCHW, OIHW; converted here).
#include <map>
#include <string>

#include "kernels/cpu/adaptive_pool.h"
#include "layers/batchnorm.h"
#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "runtime/executor.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::relative_error;

const SafetensorsFile& fixture(const std::string& file) {
  static std::map<std::string, SafetensorsFile> cache;
  auto it = cache.find(file);
  if (it == cache.end()) it = cache.emplace(file, read_safetensors(std::string(GRAFT_FIXTURE_DIR "/") + file)).first;
  return it->second;
}

const SafetensorsTensor& tensor(const SafetensorsFile& f, const std::string& name) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end()) throw std::runtime_error("fixture tensor '" + name + "' is missing");
  return it->second;
}
std::vector<float> values(const SafetensorsFile& f, const std::string& name) { return tensor(f, name).to_floats(); }
int meta_int(const SafetensorsFile& f, const std::string& key) { return std::stoi(f.metadata.at(key)); }

// NCHW -> NHWC and back.
std::vector<float> to_nhwc(const std::vector<float>& x, const std::vector<int64_t>& nchw) {
  const int64_t N = nchw[0], C = nchw[1], H = nchw[2], W = nchw[3];
  std::vector<float> y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) y[((n * H + h) * W + w) * C + c] = x[((n * C + c) * H + h) * W + w];
  return y;
}

void check_logits(const std::string& arch) {
  const std::string file = "torchvision_" + arch + "_small.safetensors";
  const auto& f = fixture(file);
  const auto& x = tensor(f, "input.x");
  ASSERT_EQ(x.shape.size(), 4u);
  const int64_t batch = x.shape[0];
  ModelSpec spec{arch, Shape{x.shape[2], x.shape[3], x.shape[1]}, meta_int(f, "num_classes"), 1};
  spec.width_divisor = meta_int(f, "width_divisor");
  spec.classifier_width = meta_int(f, "classifier_width");
  for (bool reference : {false, true}) {
    HostPool pool;
    auto m = build_model(spec, pool);
    LoadOptions lo;
    lo.strict = true;
    // The state_dict alone, strictly: every name and shape must match both ways.
    SafetensorsFile state = f;
    state.tensors.erase("input.x");
    state.tensors.erase("output.logits");
    const auto report = load_parameters(*m, state, file, lo);
    EXPECT_EQ(report.loaded.size(), m->params().size());
    ExecutorOptions o;
    o.batch = batch;
    o.training = false;
    o.reference_kernels = reference;
    Executor ex(*m, o);
    const auto input = to_nhwc(x.to_floats(), x.shape);
    std::copy(input.begin(), input.end(), ex.input());
    ex.forward(batch, false, 0);
    const auto want = values(f, "output.logits");
    ASSERT_EQ(ex.output_shape(batch).numel(), int64_t(want.size()));
    EXPECT_LT(relative_error(ex.output(), want.data(), want.size()), 1e-4)
        << arch << (reference ? " (reference kernels)" : " (fast kernels)");
  }
}

TEST(TorchvisionParity, Vgg11SmallLogits) { check_logits("vgg11"); }
TEST(TorchvisionParity, ResNet18SmallLogits) { check_logits("resnet18"); }
TEST(TorchvisionParity, ResNet50SmallLogits) { check_logits("resnet50"); }

// BatchNorm2d through the layer, against PyTorch in training mode (batch statistics, the
// running statistics update, the full backward) and in eval mode.
TEST(TorchvisionParity, BatchNormTrainAndEval) {
  const auto& f = fixture("torchvision_ops.safetensors");
  const auto& xt = tensor(f, "bn.input");
  const Shape nhwc{xt.shape[0], xt.shape[2], xt.shape[3], xt.shape[1]};
  const int c = int(xt.shape[1]);
  const auto x = to_nhwc(xt.to_floats(), xt.shape);
  for (const std::string mode : {"train", "eval"}) {
    const bool training = mode == "train";
    BatchNorm2d bn("bn", c);
    std::vector<float> gamma = values(f, "bn.weight"), beta = values(f, "bn.bias");
    std::vector<float> rmean = values(f, "bn.running_mean"), rvar = values(f, "bn.running_var"), tracked{0.0f};
    std::vector<float> workspace(bn.workspace_floats({nhwc}));
    ExecContext ctx;
    ctx.training = training;
    std::vector<float> y = testing::poisoned(x.size());
    ForwardArgs a;
    a.ctx = &ctx;
    a.inputs = {x.data()};
    a.input_shapes = {nhwc};
    a.output = y.data();
    a.output_shape = nhwc;
    a.params = {gamma.data(), beta.data(), rmean.data(), rvar.data(), tracked.data()};
    a.workspace = workspace.data();
    bn.forward(a);
    const std::string p = "bn_" + mode + ".";
    EXPECT_LT(relative_error(y, to_nhwc(values(f, p + "output"), xt.shape)), testing::kFp32Tolerance) << mode;
    EXPECT_LT(relative_error(rmean, values(f, p + "running_mean")), testing::kFp32Tolerance) << mode;
    EXPECT_LT(relative_error(rvar, values(f, p + "running_var")), testing::kFp32Tolerance) << mode;
    EXPECT_EQ(tracked[0], values(f, p + "num_batches_tracked")[0]) << mode;

    const auto dy = to_nhwc(values(f, p + "grad_output"), xt.shape);
    auto dx = testing::poisoned(x.size()), dgamma = testing::poisoned(size_t(c)), dbeta = testing::poisoned(size_t(c));
    BackwardArgs b;
    b.ctx = &ctx;
    b.inputs = {x.data()};
    b.input_shapes = {nhwc};
    b.output_shape = nhwc;
    b.doutput = dy.data();
    b.dinputs = {dx.data()};
    b.params = {gamma.data(), beta.data(), rmean.data(), rvar.data(), tracked.data()};
    b.dparams = {dgamma.data(), dbeta.data(), nullptr, nullptr, nullptr};
    b.workspace = workspace.data();
    bn.backward(b);
    EXPECT_LT(relative_error(dx, to_nhwc(values(f, p + "grad_input"), xt.shape)), testing::kFp32Tolerance) << mode;
    EXPECT_LT(relative_error(dgamma, values(f, p + "grad_weight")), testing::kFp32Tolerance) << mode;
    EXPECT_LT(relative_error(dbeta, values(f, p + "grad_bias")), testing::kFp32Tolerance) << mode;
  }
}

TEST(TorchvisionParity, AdaptiveAvgPool) {
  const auto& f = fixture("torchvision_ops.safetensors");
  for (const std::string name : {"adaptive_shrink", "adaptive_grow"}) {
    const auto& xt = tensor(f, name + ".input");
    const auto& yt = tensor(f, name + ".output");
    cpu::AdaptivePoolGeometry g;
    g.n = int(xt.shape[0]);
    g.c = int(xt.shape[1]);
    g.h = int(xt.shape[2]);
    g.w = int(xt.shape[3]);
    g.out_h = int(yt.shape[2]);
    g.out_w = int(yt.shape[3]);
    const auto x = to_nhwc(xt.to_floats(), xt.shape);
    auto y = testing::poisoned(size_t(g.output_numel()));
    cpu::adaptive_avgpool2d_forward(g, x.data(), y.data());
    EXPECT_LT(relative_error(y, to_nhwc(yt.to_floats(), yt.shape)), testing::kFp32Tolerance) << name;
    const auto dy = to_nhwc(values(f, name + ".grad_output"), yt.shape);
    auto dx = testing::poisoned(x.size());
    cpu::adaptive_avgpool2d_backward(g, dy.data(), dx.data());
    EXPECT_LT(relative_error(dx, to_nhwc(values(f, name + ".grad_input"), xt.shape)), testing::kFp32Tolerance) << name;
  }
}

}  // namespace
}  // namespace graft
