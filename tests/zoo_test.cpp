// The model zoo: torchvision's parameter counts and state_dict names and shapes (from a
// fixture written by tests/golden/make_torchvision.py), shapes and errors, the residual
// Add and AdaptiveAvgPool2d layers, and small ResNets training and back-propagating
// through the Executor.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "kernels/cpu/adaptive_pool.h"
#include "layers/adaptive_pool.h"
#include "layers/add.h"
#include "layers/batchnorm.h"
#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::error_of;
using testing::random_floats;
using testing::relative_error;

const SafetensorsFile& state_dicts() {
  static const SafetensorsFile f = read_safetensors(GRAFT_FIXTURE_DIR "/torchvision_state_dicts.safetensors");
  return f;
}

// torchvision's published parameter counts (1000 classes).
const std::map<std::string, int64_t> kTorchvisionParams{
    {"vgg11", 132863336},    {"vgg13", 133047848},    {"vgg16", 138357544},   {"vgg19", 143667240},
    {"resnet18", 11689512}, {"resnet34", 21797672}, {"resnet50", 25557032},
};

// Builds each full-size model once (a VGG is ~550 MB of floats) and checks its parameter
// count and every state_dict name and shape, in torchvision's order.
TEST(Zoo, FullSizeModelsMatchTorchvisionCountsNamesAndShapes) {
  for (const auto& [arch, count] : kTorchvisionParams) {
    HostPool pool;
    // The input size does not change any parameter (VGG's avgpool fixes the classifier at
    // 7x7); 32x32 keeps shape inference cheap.
    auto m = build_model(ModelSpec{arch, Shape{32, 32, 3}, 1000, 1}, pool);
    EXPECT_EQ(m->parameter_count(), count) << arch;
    EXPECT_EQ(std::to_string(count), state_dicts().metadata.at(arch + ".parameters")) << arch;
    const auto want = nlohmann::json::parse(state_dicts().metadata.at(arch));
    ASSERT_EQ(m->params().size(), want.size()) << arch;
    for (size_t i = 0; i < want.size(); ++i) {
      const auto& p = m->params()[i];
      EXPECT_EQ(p.name, want[i][0].get<std::string>()) << arch << " entry " << i;
      EXPECT_EQ(p.spec.checkpoint_shape, Shape(want[i][1].get<std::vector<int64_t>>())) << p.name;
      const auto& n = p.name;
      const bool buffer = n.ends_with("running_mean") || n.ends_with("running_var") || n.ends_with("num_batches_tracked");
      EXPECT_EQ(p.spec.buffer, buffer) << n;
    }
  }
}

TEST(Zoo, ArchitectureShapes) {
  HostPool pool;
  auto shape_of = [&](const std::string& node, const ModelSpec& s) {
    auto m = build_model(s, pool);
    const auto shapes = m->infer_shapes(2);
    const int n = m->find_node(node);
    EXPECT_GE(n, 0) << node;
    return n < 0 ? Shape{} : shapes[n];
  };
  // VGG16 at 224: torchvision's 7x7x512 features; logits; the backbone alone.
  ModelSpec vgg{"vgg16", Shape{224, 224, 3}, 5, 1};
  vgg.width_divisor = 8;
  vgg.classifier_width = 256;
  EXPECT_EQ(shape_of("features.30", vgg), (Shape{2, 7, 7, 64}));
  EXPECT_EQ(shape_of("classifier.6", vgg), (Shape{2, 5}));
  vgg.include_top = false;
  {
    auto m = build_model(vgg, pool);
    EXPECT_EQ(m->nodes().back().name, "features.30");
    EXPECT_EQ(m->infer_shapes(2).back(), (Shape{2, 7, 7, 64}));
  }
  // A non-square input that is not a multiple of 32 (floor, as PyTorch).
  vgg.sample_shape = Shape{100, 70, 3};
  EXPECT_EQ(shape_of("features.30", vgg), (Shape{2, 3, 2, 64}));
  // ResNet-50 at 224: 56, 28, 14, 7 and 2048 channels (here /16).
  ModelSpec r50{"resnet50", Shape{224, 224, 3}, 3, 1};
  r50.width_divisor = 16;
  EXPECT_EQ(shape_of("maxpool", r50), (Shape{2, 56, 56, 4}));
  EXPECT_EQ(shape_of("layer1.2.relu", r50), (Shape{2, 56, 56, 16}));
  EXPECT_EQ(shape_of("layer2.0.conv2", r50), (Shape{2, 28, 28, 8}));  // v1.5: stride on the 3x3
  EXPECT_EQ(shape_of("layer2.0.conv1", r50), (Shape{2, 56, 56, 8}));
  EXPECT_EQ(shape_of("layer4.2.relu", r50), (Shape{2, 7, 7, 128}));
  EXPECT_EQ(shape_of("fc", r50), (Shape{2, 3}));
  // ResNet accepts tiny inputs (every stage at least 1x1).
  ModelSpec r18{"resnet18", Shape{8, 8, 1}, 3, 1};
  r18.width_divisor = 16;
  EXPECT_EQ(shape_of("layer4.1.relu", r18), (Shape{2, 1, 1, 32}));
}

TEST(Zoo, ResNetBlocksAreWiredAsTorchvision) {
  HostPool pool;
  ModelSpec s{"resnet18", Shape{32, 32, 3}, 3, 1};
  s.width_divisor = 16;
  auto m = build_model(s, pool);
  auto node = [&](const std::string& n) { return m->find_node(n); };
  const auto& add = m->nodes()[node("layer1.0.add")];
  EXPECT_EQ(add.inputs, (std::vector<int>{node("layer1.0.bn2"), node("maxpool")}));  // identity shortcut
  const auto& add2 = m->nodes()[node("layer2.0.add")];
  EXPECT_EQ(add2.inputs, (std::vector<int>{node("layer2.0.bn2"), node("layer2.0.downsample.1")}));
  EXPECT_EQ(m->nodes()[node("layer2.0.downsample.0")].inputs, (std::vector<int>{node("layer1.1.relu")}));
  EXPECT_EQ(m->nodes()[node("layer2.0.conv1")].inputs, (std::vector<int>{node("layer1.1.relu")}));
  EXPECT_EQ(node("layer1.0.downsample.0"), -1);
}

TEST(Zoo, ErrorsNameTheProblem) {
  HostPool pool;
  auto msg = error_of([&] { build_model(ModelSpec{"vgg16", Shape{16, 16, 3}, 10, 1, "", true, 16}, pool); });
  EXPECT_NE(msg.find("features."), std::string::npos) << msg;
  EXPECT_NE(msg.find("smaller"), std::string::npos) << msg;
  msg = error_of([&] { build_model(ModelSpec{"resnet18", Shape{32, 32, 3}, 10, 1, "", true, 3}, pool); });
  EXPECT_NE(msg.find("divisor 3"), std::string::npos) << msg;
  msg = error_of([&] { build_model(ModelSpec{"vgg17", Shape{32, 32, 3}, 10, 1}, pool); });
  EXPECT_NE(msg.find("'vgg17'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("resnet50"), std::string::npos) << msg;
  msg = error_of([&] { build_model(ModelSpec{"resnet18", Shape{32, 32}, 10, 1}, pool); });
  EXPECT_NE(msg.find("[H, W, C]"), std::string::npos) << msg;
  for (const auto& arch : known_architectures()) EXPECT_FALSE(backbone_patterns(arch).empty()) << arch;
  msg = error_of([&] { backbone_patterns("alexnet"); });
  EXPECT_NE(msg.find("'alexnet'"), std::string::npos) << msg;
}

TEST(Zoo, BackbonePatternsFreezeEverythingButTheTop) {
  HostPool pool;
  for (const std::string arch : {"resnet50", "vgg11", "fmnist_cnn"}) {
    ModelSpec s{arch, Shape{32, 32, 3}, 4, 1};
    s.width_divisor = 16;
    s.classifier_width = 512;
    auto m = build_model(s, pool);
    const auto frozen = resolve_freeze_patterns(*m, backbone_patterns(arch));
    for (int n = 0; n < m->num_nodes(); ++n) {
      if (m->node_param_count(n) == 0) continue;
      const auto& name = m->nodes()[n].name;
      const bool top = name == "fc" || name.starts_with("classifier.") || name.starts_with("fc");
      EXPECT_EQ(frozen[n], !top) << arch << " " << name;
    }
  }
}

// --- Add ---

TEST(Add, ForwardAddsAndBackwardPassesTheGradientToWhoeverNeedsIt) {
  Add add("add");
  const Shape s{2, 3, 3, 4};
  EXPECT_EQ(add.output_shape({s, s}), s);
  EXPECT_NE(error_of([&] { add.output_shape({s, Shape{2, 3, 3, 5}}); }).find("layer add"), std::string::npos);
  const auto a = random_floats(72), b = random_floats(72), dy = random_floats(72);
  auto y = testing::poisoned(72);
  ExecContext ctx;
  ForwardArgs f;
  f.ctx = &ctx;
  f.inputs = {a.data(), b.data()};
  f.input_shapes = {s, s};
  f.output = y.data();
  f.output_shape = s;
  add.forward(f);
  for (size_t i = 0; i < 72; ++i) EXPECT_EQ(y[i], a[i] + b[i]);
  for (int mask = 1; mask < 4; ++mask) {
    auto da = testing::poisoned(72), db = testing::poisoned(72);
    BackwardArgs g;
    g.ctx = &ctx;
    g.inputs = {nullptr, nullptr};
    g.input_shapes = {s, s};
    g.output_shape = s;
    g.doutput = dy.data();
    g.dinputs = {mask & 1 ? da.data() : nullptr, mask & 2 ? db.data() : nullptr};
    add.backward(g);
    // Written where needed, untouched (still poisoned) where not.
    EXPECT_EQ(mask & 1 ? da == dy : std::isnan(da[0]), true) << mask;
    EXPECT_EQ(mask & 2 ? db == dy : std::isnan(db[0]), true) << mask;
  }
}

// --- AdaptiveAvgPool2d ---

std::vector<double> adaptive_reference(const cpu::AdaptivePoolGeometry& g, const std::vector<float>& x) {
  std::vector<double> y(size_t(g.output_numel()));
  for (int b = 0; b < g.n; ++b)
    for (int oy = 0; oy < g.out_h; ++oy)
      for (int ox = 0; ox < g.out_w; ++ox)
        for (int c = 0; c < g.c; ++c) {
          // PyTorch: start = floor(i * in / out), end = ceil((i + 1) * in / out).
          const int y0 = int(std::floor(double(oy) * g.h / g.out_h)), y1 = int(std::ceil(double(oy + 1) * g.h / g.out_h));
          const int x0 = int(std::floor(double(ox) * g.w / g.out_w)), x1 = int(std::ceil(double(ox + 1) * g.w / g.out_w));
          double s = 0;
          for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) s += x[((size_t(b) * g.h + iy) * g.w + ix) * g.c + c];
          y[((size_t(b) * g.out_h + oy) * g.out_w + ox) * g.c + c] = s / ((y1 - y0) * (x1 - x0));
        }
  return y;
}

TEST(AdaptivePool, ForwardMatchesTheWindowFormula) {
  for (int trial = 0; trial < 6; ++trial) {
    cpu::AdaptivePoolGeometry g;
    g.n = testing::random_int(1, 3);
    g.h = testing::random_int(1, 11);
    g.w = testing::random_int(1, 11);
    g.c = testing::random_int(1, 5);
    g.out_h = trial == 0 ? 7 : testing::random_int(1, 9);
    g.out_w = trial == 0 ? 7 : testing::random_int(1, 9);
    const auto x = random_floats(size_t(g.input_numel()));
    auto y = testing::poisoned(size_t(g.output_numel()));
    cpu::adaptive_avgpool2d_forward(g, x.data(), y.data());
    const auto want = adaptive_reference(g, x);
    const std::vector<float> wantf(want.begin(), want.end());
    EXPECT_LT(relative_error(y, wantf), testing::kFp32Tolerance)
        << g.h << "x" << g.w << " -> " << g.out_h << "x" << g.out_w;
  }
}

TEST(AdaptivePool, LayerBackwardMatchesFiniteDifferences) {
  for (auto [h, w, oh, ow] : {std::array{7, 5, 3, 2}, std::array{2, 3, 5, 4}, std::array{1, 1, 7, 7}}) {
    AdaptiveAvgPool2d pool("avgpool", oh, ow);
    const Shape in{2, h, w, 3};
    const Shape out = pool.output_shape({in});
    EXPECT_EQ(out, (Shape{2, oh, ow, 3}));
    auto x = random_floats(size_t(in.numel()));
    const auto r = random_floats(size_t(out.numel()));
    ExecContext ctx;
    auto f = [&] {
      std::vector<float> y(size_t(out.numel()));
      ForwardArgs a;
      a.ctx = &ctx;
      a.inputs = {x.data()};
      a.input_shapes = {in};
      a.output = y.data();
      a.output_shape = out;
      pool.forward(a);
      return testing::dot(y, r);
    };
    auto dx = testing::poisoned(x.size());
    BackwardArgs b;
    b.ctx = &ctx;
    b.inputs = {nullptr};
    b.input_shapes = {in};
    b.output_shape = out;
    b.doutput = r.data();
    b.dinputs = {dx.data()};
    pool.backward(b);
    testing::expect_gradient_close(dx, testing::numerical_gradient(x, f), "adaptive pool dx");
  }
}

// --- small ResNets through the Executor ---

ModelSpec tiny_resnet(int classes, int side = 16) {
  ModelSpec s{"resnet18", Shape{side, side, 3}, classes, testing::test_seed()};
  s.width_divisor = 16;
  return s;
}

void fill(Executor& ex, int64_t n, const Shape& sample, int classes) {
  const auto x = random_floats(size_t(n * sample.numel()));
  std::copy(x.begin(), x.end(), ex.input());
  for (int64_t i = 0; i < n; ++i) ex.labels()[i] = testing::random_int(0, classes - 1);
}

// Batch norm buffers (including the rank-0 num_batches_tracked) go through a checkpoint
// and come back bitwise; a strict load finds every torchvision name.
TEST(Zoo, CheckpointRoundTripKeepsBatchNormBuffers) {
  HostPool pool;
  auto a = build_model(tiny_resnet(3), pool);
  for (size_t p = 0; p < a->params().size(); ++p) {
    const auto v = random_floats(size_t(a->params()[p].spec.shape.numel()), 0.5f, 1.5f);
    std::copy(v.begin(), v.end(), a->param_data(p));
  }
  const std::string path = ::testing::TempDir() + "/zoo_resnet_roundtrip.safetensors";
  save_checkpoint(path, *a, nullptr, {}, CheckpointInfo{});
  auto b = build_model(tiny_resnet(3), pool);
  LoadOptions lo;
  lo.strict = true;
  load_parameters(*b, read_safetensors(path), path, lo);
  for (size_t p = 0; p < a->params().size(); ++p)
    EXPECT_TRUE(std::equal(a->param_data(p), a->param_data(p) + a->params()[p].spec.shape.numel(), b->param_data(p)))
        << a->params()[p].name;
  EXPECT_EQ(read_safetensors(path).tensors.at("layer2.0.downsample.1.num_batches_tracked").shape.size(), 0u);
}

TEST(Zoo, SmallResNetTrainsThroughTheExecutor) {
  HostPool pool;
  auto m = build_model(tiny_resnet(4), pool);
  ExecutorOptions o;
  o.batch = 8;
  Executor ex(*m, o);
  OptimizerConfig oc;
  oc.kind = "adam";
  Optimizer opt(oc, ex.trainable_count(), pool);
  fill(ex, 8, m->sample_shape(), 4);
  std::vector<double> losses;
  const int bn1 = m->find_node("bn1");
  const auto rmean_param = m->node_params(bn1)[2];
  const std::vector<float> rmean0(m->param_data(rmean_param), m->param_data(rmean_param) + 4);
  for (int step = 0; step < 12; ++step) {
    ex.reset_metrics();
    ex.forward(8, true, step);
    ex.backward(8);
    losses.push_back(ex.last_batch_loss());
    opt.step(ex.trainable_segments(), 1e-2f);
  }
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "first " << losses.front() << " last " << losses.back();
  for (int n = 0; n < m->num_nodes(); ++n) EXPECT_EQ(ex.backward_calls()[n], 12) << m->nodes()[n].name;
  // Running statistics moved (Train policy), and num_batches_tracked counted the steps.
  EXPECT_NE(std::vector<float>(m->param_data(rmean_param), m->param_data(rmean_param) + 4), rmean0);
  EXPECT_EQ(*m->param_data(m->node_params(bn1)[4]), 12.0f);
}

TEST(Zoo, FrozenResNetBackboneKeepsItsBatchNormStatistics) {
  HostPool pool;
  auto m = build_model(tiny_resnet(3), pool);
  ExecutorOptions o;
  o.batch = 4;
  o.frozen = resolve_freeze_patterns(*m, backbone_patterns("resnet18"));
  apply_batchnorm_policy(*m, o.frozen, {});
  Executor ex(*m, o);
  Optimizer opt(OptimizerConfig{}, ex.trainable_count(), pool);
  const std::vector<float> before(m->param_data(0), m->param_data(0) + m->total_param_count());
  for (int step = 0; step < 3; ++step) {
    fill(ex, 4, m->sample_shape(), 3);
    ex.forward(4, true, step);
    ex.backward(4);
    opt.step(ex.trainable_segments(), 1e-2f);
  }
  for (size_t p = 0; p < m->params().size(); ++p) {
    const auto& info = m->params()[p];
    const bool same = std::equal(m->param_data(p), m->param_data(p) + info.spec.shape.numel(), before.data() + info.offset);
    EXPECT_EQ(same, info.name.rfind("fc.", 0) != 0) << info.name;
  }
  for (int n = 0; n < m->num_nodes(); ++n)
    EXPECT_EQ(ex.backward_calls()[n], m->nodes()[n].name == "fc" ? 3 : 0) << m->nodes()[n].name;
}

// Finite-difference checks of a whole tiny ResNet's loss gradient through the Executor:
// residual adds, identity and downsample shortcuts, nodes with two consumers whose
// gradients the executor sums. Returns (analytic, numeric) pairs for a few random entries
// of every trainable tensor, skipping entries where a ReLU or max-pool switches inside
// [x - h, x + h] (the one-sided slopes disagree).
struct GradientSample {
  std::string name;
  double analytic, numeric;
};
std::vector<GradientSample> resnet_gradient_samples(bool reference, bool batch_stats, int per_tensor, float h,
                                                    int* kinks) {
  HostPool pool;
  auto m = build_model(tiny_resnet(3, 32), pool);  // 32x32: batch norm sees 8+ values per channel
  ExecutorOptions o;
  o.batch = 8;
  o.reference_kernels = reference;
  Executor ex(*m, o);
  fill(ex, o.batch, m->sample_shape(), 3);
  if (!batch_stats) {
    // Running statistics close to this batch's (so activations keep their scale), then held.
    for (int i = 0; i < 40; ++i) ex.forward(o.batch, true, 0);
    apply_batchnorm_policy(*m, {}, {{"*", BnPolicy::FrozenStats}});
  }
  ex.forward(o.batch, true, 0);
  ex.backward(o.batch);
  auto loss = [&] {
    ex.reset_metrics();
    ex.forward(o.batch, true, 0);  // training mode, as the gradient saw it
    ex.accumulate_metrics(o.batch);
    return ex.read_metrics().loss();
  };
  const double mid = loss();
  std::vector<GradientSample> out;
  for (const auto& seg : ex.trainable_segments()) {
    for (int k = 0; k < per_tensor; ++k) {
      const int64_t i = testing::random_int(0, int(seg.count - 1));
      const float saved = seg.param[i];
      seg.param[i] = saved + h;
      const double plus = loss();
      seg.param[i] = saved - h;
      const double minus = loss();
      seg.param[i] = saved;
      const double fwd = (plus - mid) / h, bwd = (mid - minus) / h;
      if (std::abs(fwd - bwd) > 2e-3 + 0.05 * std::abs(fwd + bwd)) {
        ++*kinks;
        continue;
      }
      out.push_back({seg.name + (reference ? " (reference)" : " (fast)"), seg.grad[i], (plus - minus) / (2.0 * h)});
    }
  }
  return out;
}

// At these tiny widths (4 to 32 channels) every weight of the first stages has thousands
// of ReLUs downstream, and a perturbation moves all of them: the loss is a staircase of
// small kinks there and central differences converge to the analytic gradient only as
// h -> 0 within float noise (checked by hand from 1e-3 down to 3e-5). So the last stages
// (layer3, layer4, fc: identity and downsample blocks, two-consumer nodes) are checked
// entry by entry, and the whole sample, first stages included, in aggregate.
void check_resnet_gradients(const std::vector<GradientSample>& samples, int kinks) {
  int close = 0;
  double diff2 = 0, ref2 = 0;
  for (const auto& s : samples) {
    const bool ok = std::abs(s.analytic - s.numeric) <= 3e-3 + 5e-2 * std::max(std::abs(s.analytic), std::abs(s.numeric));
    close += ok;
    diff2 += (s.analytic - s.numeric) * (s.analytic - s.numeric);
    ref2 += s.numeric * s.numeric;
    if (s.name.starts_with("layer3") || s.name.starts_with("layer4") || s.name.starts_with("fc")) {
      EXPECT_TRUE(ok) << s.name << ": analytic " << s.analytic << " numeric " << s.numeric;
    }
  }
  ASSERT_GT(samples.size(), 3u * size_t(kinks)) << "too many kinks to say anything";
  EXPECT_GE(close, int(0.85 * double(samples.size()))) << close << " of " << samples.size() << " entries match";
  EXPECT_LT(std::sqrt(diff2 / ref2), 0.1) << "relative L2 error of the sampled gradient";
}

// Batch norm on running statistics (affine), fast and reference kernels.
TEST(Zoo, TinyResNetGradientsMatchFiniteDifferences) {
  for (bool reference : {false, true}) {
    int kinks = 0;
    check_resnet_gradients(resnet_gradient_samples(reference, false, reference ? 2 : 3, 3e-4f, &kinks), kinks);
  }
}

// Batch norm on batch statistics (couples the examples of the batch).
TEST(Zoo, TinyResNetBatchStatisticsGradientsMatchFiniteDifferences) {
  int kinks = 0;
  check_resnet_gradients(resnet_gradient_samples(false, true, 3, 1e-4f, &kinks), kinks);
}

}  // namespace
}  // namespace graft
