// Parity with PyTorch: the CPU kernels (reference and fast), the optimizers and the
// learning-rate schedules against golden values written by tests/golden/make_golden.py
// (committed fixtures under tests/fixtures; CI has no torch). Fixtures hold PyTorch's
// layouts (NCHW activations, OIHW conv weights); the test converts to graft's (NHWC, OHWI)
// and back. Every output and gradient must agree to testing::kFp32Tolerance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "kernels/cpu/conv.h"
#include "kernels/cpu/dense.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/pool.h"
#include "runtime/lr_schedule.h"
#include "runtime/memory_pool.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::kFp32Tolerance;
using testing::poisoned;
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

std::vector<int64_t> shape(const SafetensorsFile& f, const std::string& name) { return tensor(f, name).shape; }

const std::string& meta(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) throw std::runtime_error("fixture metadata '" + key + "' is missing");
  return it->second;
}
int meta_int(const SafetensorsFile& f, const std::string& key) { return std::stoi(meta(f, key)); }
double meta_double(const SafetensorsFile& f, const std::string& key) { return std::stod(meta(f, key)); }

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    const size_t end = comma == std::string::npos ? s.size() : comma;
    if (end > start) out.push_back(s.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// [n][c][h][w] <-> [n][h][w][c]; also OIHW <-> OHWI (same permutation with n = O, c = I).
std::vector<float> nchw_to_nhwc(const std::vector<float>& v, int n, int c, int h, int w) {
  EXPECT_EQ(v.size(), size_t(n) * c * h * w);
  std::vector<float> out(v.size());
  for (int in = 0; in < n; ++in)
    for (int ic = 0; ic < c; ++ic)
      for (int ih = 0; ih < h; ++ih)
        for (int iw = 0; iw < w; ++iw)
          out[((size_t(in) * h + ih) * w + iw) * c + ic] = v[((size_t(in) * c + ic) * h + ih) * w + iw];
  return out;
}
std::vector<float> nhwc_to_nchw(const std::vector<float>& v, int n, int c, int h, int w) {
  EXPECT_EQ(v.size(), size_t(n) * c * h * w);
  std::vector<float> out(v.size());
  for (int in = 0; in < n; ++in)
    for (int ic = 0; ic < c; ++ic)
      for (int ih = 0; ih < h; ++ih)
        for (int iw = 0; iw < w; ++iw)
          out[((size_t(in) * c + ic) * h + ih) * w + iw] = v[((size_t(in) * h + ih) * w + iw) * c + ic];
  return out;
}

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, const std::string& what,
                  double tolerance = kFp32Tolerance) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  const double err = relative_error(actual, expected);
  if (std::getenv("GRAFT_PARITY_VERBOSE")) std::printf("  %-40s relative error %.3g\n", what.c_str(), err);
  EXPECT_LT(err, tolerance) << what << ": relative error " << err;
}

// ---------------------------------------------------------------------------------------
// Convolution

TEST(PytorchParity, Conv2dForwardBackward) {
  const SafetensorsFile& f = fixture("golden_conv.safetensors");
  const std::vector<std::string> configs = split(meta(f, "configs"));
  ASSERT_EQ(configs.size(), 3u);
  for (const std::string& name : configs) {
    SCOPED_TRACE(name);
    const std::vector<int64_t> xs = shape(f, name + ".input"), ws = shape(f, name + ".weight");
    const std::vector<int64_t> ys = shape(f, name + ".output");
    ASSERT_EQ(xs.size(), 4u);
    ASSERT_EQ(ws.size(), 4u);
    Conv2dGeometry g;
    g.n = int(xs[0]);
    g.c_in = int(xs[1]);
    g.h = int(xs[2]);
    g.w = int(xs[3]);
    g.c_out = int(ws[0]);
    g.kh = int(ws[2]);
    g.kw = int(ws[3]);
    g.stride = meta_int(f, name + ".stride");
    g.pad = meta_int(f, name + ".pad");
    ASSERT_EQ(ws[1], g.c_in);
    ASSERT_EQ(meta_int(f, name + ".kernel"), g.kh);
    ASSERT_EQ(ys, (std::vector<int64_t>{g.n, g.c_out, g.out_h(), g.out_w()}));

    const std::vector<float> x = nchw_to_nhwc(values(f, name + ".input"), g.n, g.c_in, g.h, g.w);
    const std::vector<float> w = nchw_to_nhwc(values(f, name + ".weight"), g.c_out, g.c_in, g.kh, g.kw);
    const std::vector<float> bias = values(f, name + ".bias");
    const std::vector<float> dy = nchw_to_nhwc(values(f, name + ".grad_output"), g.n, g.c_out, g.out_h(), g.out_w());
    const std::vector<float> y_ref = values(f, name + ".output");
    const std::vector<float> dx_ref = values(f, name + ".grad_input");
    const std::vector<float> dw_ref = values(f, name + ".grad_weight");
    const std::vector<float> db_ref = values(f, name + ".grad_bias");

    auto check = [&](const std::string& variant, const std::vector<float>& y, const std::vector<float>& dx,
                     const std::vector<float>& dw, const std::vector<float>& db) {
      expect_close(nhwc_to_nchw(y, g.n, g.c_out, g.out_h(), g.out_w()), y_ref, variant + " output");
      expect_close(nhwc_to_nchw(dx, g.n, g.c_in, g.h, g.w), dx_ref, variant + " grad_input");
      expect_close(nhwc_to_nchw(dw, g.c_out, g.c_in, g.kh, g.kw), dw_ref, variant + " grad_weight");
      expect_close(db, db_ref, variant + " grad_bias");
    };

    {
      std::vector<float> y = poisoned(size_t(g.output_numel())), dx = poisoned(size_t(g.input_numel()));
      std::vector<float> dw = poisoned(size_t(g.weight_numel())), db = poisoned(size_t(g.c_out));
      cpu::conv2d_forward_reference(g, x.data(), w.data(), bias.data(), y.data());
      cpu::conv2d_backward_data_reference(g, dy.data(), w.data(), dx.data());
      cpu::conv2d_backward_filter_reference(g, x.data(), dy.data(), dw.data(), db.data());
      check("reference", y, dx, dw, db);
    }
    {
      std::vector<float> ws_buf = poisoned(cpu::conv2d_workspace_floats(g));
      std::vector<float> y = poisoned(size_t(g.output_numel())), dx = poisoned(size_t(g.input_numel()));
      std::vector<float> dw = poisoned(size_t(g.weight_numel())), db = poisoned(size_t(g.c_out));
      cpu::conv2d_forward_fast(g, x.data(), w.data(), bias.data(), y.data(), ws_buf.data());
      cpu::conv2d_backward_data_fast(g, dy.data(), w.data(), dx.data(), ws_buf.data());
      cpu::conv2d_backward_filter_fast(g, x.data(), dy.data(), dw.data(), db.data(), ws_buf.data());
      check("fast", y, dx, dw, db);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Pooling

Pool2dGeometry pool_geometry(const SafetensorsFile& f, const std::string& name) {
  const std::vector<int64_t> xs = shape(f, name + ".input");
  EXPECT_EQ(xs.size(), 4u);
  Pool2dGeometry g;
  g.n = int(xs[0]);
  g.c = int(xs[1]);
  g.h = int(xs[2]);
  g.w = int(xs[3]);
  g.kh = g.kw = meta_int(f, name + ".kernel");
  g.stride = meta_int(f, name + ".stride");
  g.pad = meta_int(f, name + ".pad");
  return g;
}

void check_pool(const std::string& op) {
  const SafetensorsFile& f = fixture("golden_pool.safetensors");
  int checked = 0;
  for (const std::string& name : split(meta(f, "configs"))) {
    if (meta(f, name + ".op") != op) continue;
    SCOPED_TRACE(name);
    ++checked;
    const Pool2dGeometry g = pool_geometry(f, name);
    ASSERT_EQ(shape(f, name + ".output"), (std::vector<int64_t>{g.n, g.c, g.out_h(), g.out_w()}));
    const std::vector<float> x = nchw_to_nhwc(values(f, name + ".input"), g.n, g.c, g.h, g.w);
    const std::vector<float> dy = nchw_to_nhwc(values(f, name + ".grad_output"), g.n, g.c, g.out_h(), g.out_w());
    std::vector<float> y = poisoned(size_t(g.output_numel())), dx = poisoned(size_t(g.input_numel()));
    if (op == "max") {
      cpu::maxpool2d_forward(g, x.data(), y.data());
      cpu::maxpool2d_backward(g, x.data(), dy.data(), dx.data());
    } else {
      cpu::avgpool2d_forward(g, x.data(), y.data());
      cpu::avgpool2d_backward(g, dy.data(), dx.data());
    }
    expect_close(nhwc_to_nchw(y, g.n, g.c, g.out_h(), g.out_w()), values(f, name + ".output"), "output");
    expect_close(nhwc_to_nchw(dx, g.n, g.c, g.h, g.w), values(f, name + ".grad_input"), "grad_input");
  }
  EXPECT_EQ(checked, 2) << op;
}

TEST(PytorchParity, MaxPool2d) { check_pool("max"); }
TEST(PytorchParity, AvgPool2dCountIncludePad) { check_pool("avg"); }

TEST(PytorchParity, GlobalAvgPool) {
  const SafetensorsFile& f = fixture("golden_pool.safetensors");
  const std::string name = "global_avgpool";
  const std::vector<int64_t> xs = shape(f, name + ".input");
  ASSERT_EQ(xs.size(), 4u);
  const int n = int(xs[0]), c = int(xs[1]), h = int(xs[2]), w = int(xs[3]);
  ASSERT_EQ(shape(f, name + ".output"), (std::vector<int64_t>{n, c, 1, 1}));
  const std::vector<float> x = nchw_to_nhwc(values(f, name + ".input"), n, c, h, w);
  const std::vector<float> dy = values(f, name + ".grad_output");  // [n, c, 1, 1] == [n, c]
  std::vector<float> y = poisoned(size_t(n) * c), dx = poisoned(x.size());
  cpu::global_avgpool_forward(n, h, w, c, x.data(), y.data());
  cpu::global_avgpool_backward(n, h, w, c, dy.data(), dx.data());
  expect_close(y, values(f, name + ".output"), "output");
  expect_close(nhwc_to_nchw(dx, n, c, h, w), values(f, name + ".grad_input"), "grad_input");
}

// ---------------------------------------------------------------------------------------
// Dense and losses

TEST(PytorchParity, Linear) {
  const SafetensorsFile& f = fixture("golden_dense_loss.safetensors");
  const std::vector<int64_t> xs = shape(f, "linear.input"), ws = shape(f, "linear.weight");
  ASSERT_EQ(xs.size(), 2u);
  ASSERT_EQ(ws.size(), 2u);
  const int n = int(xs[0]), in = int(xs[1]), out = int(ws[0]);
  ASSERT_EQ(ws[1], in);
  const std::vector<float> x = values(f, "linear.input"), w = values(f, "linear.weight");
  const std::vector<float> b = values(f, "linear.bias"), dy = values(f, "linear.grad_output");
  for (const bool fast : {false, true}) {
    const std::string variant = fast ? "fast" : "reference";
    SCOPED_TRACE(variant);
    std::vector<float> y = poisoned(size_t(n) * out), dx = poisoned(x.size());
    std::vector<float> dw = poisoned(w.size()), db = poisoned(b.size());
    if (fast) {
      cpu::dense_forward_fast(n, in, out, x.data(), w.data(), b.data(), y.data());
      cpu::dense_backward_data_fast(n, in, out, dy.data(), w.data(), dx.data());
      cpu::dense_backward_weights_fast(n, in, out, x.data(), dy.data(), dw.data(), db.data());
    } else {
      cpu::dense_forward_reference(n, in, out, x.data(), w.data(), b.data(), y.data());
      cpu::dense_backward_data_reference(n, in, out, dy.data(), w.data(), dx.data());
      cpu::dense_backward_weights_reference(n, in, out, x.data(), dy.data(), dw.data(), db.data());
    }
    expect_close(y, values(f, "linear.output"), variant + " output");
    expect_close(dx, values(f, "linear.grad_input"), variant + " grad_input");
    expect_close(dw, values(f, "linear.grad_weight"), variant + " grad_weight");
    expect_close(db, values(f, "linear.grad_bias"), variant + " grad_bias");
  }
}

void check_cross_entropy(const std::string& name) {
  const SafetensorsFile& f = fixture("golden_dense_loss.safetensors");
  const std::vector<int64_t> zs = shape(f, name + ".logits");
  ASSERT_EQ(zs.size(), 2u);
  const int n = int(zs[0]), classes = int(zs[1]);
  const std::vector<float> z = values(f, name + ".logits");
  std::vector<int32_t> labels;
  for (float l : values(f, name + ".labels")) labels.push_back(static_cast<int32_t>(l));
  ASSERT_EQ(labels.size(), size_t(n));
  const float smoothing = static_cast<float>(meta_double(f, name + ".label_smoothing"));
  std::vector<float> dz = poisoned(z.size());
  double loss_sum = 0.0;
  cpu::softmax_cross_entropy(n, classes, z.data(), labels.data(), smoothing, 1.0f / float(n), dz.data(),
                             &loss_sum, nullptr);
  const std::vector<float> loss = {static_cast<float>(loss_sum / n)};
  expect_close(loss, values(f, name + ".loss"), "loss (mean)");
  expect_close(dz, values(f, name + ".grad_logits"), "grad_logits");
}

TEST(PytorchParity, CrossEntropy) { check_cross_entropy("cross_entropy"); }
TEST(PytorchParity, CrossEntropyLabelSmoothing) { check_cross_entropy("cross_entropy_ls"); }

TEST(PytorchParity, MseLoss) {
  const SafetensorsFile& f = fixture("golden_dense_loss.safetensors");
  const std::vector<float> p = values(f, "mse.pred"), t = values(f, "mse.target");
  ASSERT_EQ(p.size(), t.size());
  const int64_t count = int64_t(p.size());
  std::vector<float> dp = poisoned(p.size());
  double loss_sum = 0.0;
  cpu::mse(count, p.data(), t.data(), 1.0f / float(count), dp.data(), &loss_sum);
  const std::vector<float> loss = {static_cast<float>(loss_sum / double(count))};
  expect_close(loss, values(f, "mse.loss"), "loss (mean)");
  expect_close(dp, values(f, "mse.grad_pred"), "grad_pred");
}

// ---------------------------------------------------------------------------------------
// Optimizers: 5 steps of torch.optim with a fresh gradient per step and a different lr per
// step; graft::Optimizer over the same parameters laid out as consecutive segments.

TEST(PytorchParity, Optimizers) {
  const SafetensorsFile& f = fixture("golden_optim.safetensors");
  const int steps = meta_int(f, "steps"), num_params = meta_int(f, "num_params");
  std::vector<float> lrs;
  for (const std::string& s : split(meta(f, "lrs"))) lrs.push_back(std::stof(s));
  ASSERT_EQ(lrs.size(), size_t(steps));
  const std::vector<std::string> configs = split(meta(f, "configs"));
  ASSERT_EQ(configs.size(), 5u);
  for (const std::string& name : configs) {
    SCOPED_TRACE(name);
    OptimizerConfig cfg;
    cfg.kind = meta(f, name + ".kind");
    cfg.weight_decay = static_cast<float>(meta_double(f, name + ".weight_decay"));
    if (cfg.kind == "sgd") {
      cfg.momentum = static_cast<float>(meta_double(f, name + ".momentum"));
      cfg.dampening = static_cast<float>(meta_double(f, name + ".dampening"));
      cfg.nesterov = meta_int(f, name + ".nesterov") != 0;
    } else {
      cfg.beta1 = static_cast<float>(meta_double(f, name + ".beta1"));
      cfg.beta2 = static_cast<float>(meta_double(f, name + ".beta2"));
      cfg.eps = static_cast<float>(meta_double(f, name + ".eps"));
    }
    cfg.lr = lrs[0];

    std::vector<std::vector<float>> params, initial;
    int64_t total = 0;
    for (int i = 0; i < num_params; ++i) {
      params.push_back(values(f, name + ".p" + std::to_string(i) + ".initial"));
      total += int64_t(params.back().size());
    }
    initial = params;

    HostPool pool;
    Optimizer opt(cfg, total, pool);
    for (int step = 0; step < steps; ++step) {
      std::vector<std::vector<float>> grads;
      for (int i = 0; i < num_params; ++i)
        grads.push_back(values(f, name + ".p" + std::to_string(i) + ".grad" + std::to_string(step)));
      std::vector<ParamSegment> segments;
      for (int i = 0; i < num_params; ++i)
        segments.push_back({"p" + std::to_string(i), params[size_t(i)].data(), grads[size_t(i)].data(),
                            int64_t(params[size_t(i)].size())});
      opt.step(segments, lrs[size_t(step)]);
    }
    EXPECT_EQ(opt.step_count(), steps);

    const std::vector<std::string> names = opt.state_names();
    int64_t offset = 0;
    for (int i = 0; i < num_params; ++i) {
      const std::string p = name + ".p" + std::to_string(i);
      SCOPED_TRACE(p);
      const std::vector<float> expected = values(f, p + ".final");
      expect_close(params[size_t(i)], expected, "final params");
      // The update itself, so a small error cannot hide behind the parameters' magnitude.
      std::vector<float> delta(expected.size()), expected_delta(expected.size());
      for (size_t k = 0; k < expected.size(); ++k) {
        delta[k] = params[size_t(i)][k] - initial[size_t(i)][k];
        expected_delta[k] = expected[k] - initial[size_t(i)][k];
      }
      expect_close(delta, expected_delta, "params - initial");

      const size_t count = expected.size();
      for (size_t s = 0; s < names.size(); ++s) {
        const float* st = opt.state(s) + offset;
        expect_close(std::vector<float>(st, st + count), values(f, p + "." + names[s]), "state " + names[s]);
      }
      offset += int64_t(count);
    }
    // Every state buffer torch kept has a graft counterpart (and plain SGD keeps none).
    for (const auto& [tname, t] : f.tensors) {
      if (tname.rfind(name + ".p0.", 0) != 0) continue;
      const std::string key = tname.substr(name.size() + 4);
      if (key == "initial" || key == "final" || key.rfind("grad", 0) == 0) continue;
      EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << "torch state " << key;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Learning-rate schedules against torch.optim.lr_scheduler, stepped once per iteration.

void expect_schedule(const LrScheduleConfig& c, const std::vector<float>& torch_values) {
  ASSERT_NO_THROW(c.validate());
  ASSERT_FALSE(torch_values.empty());
  for (size_t s = 0; s < torch_values.size(); ++s) {
    const double ours = learning_rate_at(c, int64_t(s));
    const double theirs = torch_values[s];
    EXPECT_LT(std::abs(ours - theirs) / std::abs(theirs), 1e-6) << c.kind << " step " << s << ": graft " << ours
                                                              << ", torch " << theirs;
  }
}

TEST(PytorchParity, CosineAnnealingLR) {
  const SafetensorsFile& f = fixture("golden_lr.safetensors");
  LrScheduleConfig c;
  c.kind = "cosine";
  c.base_lr = static_cast<float>(meta_double(f, "cosine.base_lr"));
  c.total_steps = meta_int(f, "cosine.total_steps");
  c.min_lr = static_cast<float>(meta_double(f, "cosine.min_lr"));
  const std::vector<float> v = values(f, "cosine");
  ASSERT_EQ(v.size(), size_t(c.total_steps + 1));
  expect_schedule(c, v);
}

TEST(PytorchParity, StepLR) {
  const SafetensorsFile& f = fixture("golden_lr.safetensors");
  LrScheduleConfig c;
  c.kind = "step";
  c.base_lr = static_cast<float>(meta_double(f, "step.base_lr"));
  c.step_size = meta_int(f, "step.step_size");
  c.gamma = static_cast<float>(meta_double(f, "step.gamma"));
  expect_schedule(c, values(f, "step"));
}

TEST(PytorchParity, LinearWarmupThenCosine) {
  const SafetensorsFile& f = fixture("golden_lr.safetensors");
  if (!f.tensors.count("warmup_cosine")) GTEST_SKIP() << "fixture has no SequentialLR values";
  LrScheduleConfig c;
  c.kind = "cosine";
  c.base_lr = static_cast<float>(meta_double(f, "warmup_cosine.base_lr"));
  c.warmup_steps = meta_int(f, "warmup_cosine.warmup_steps");
  c.total_steps = meta_int(f, "warmup_cosine.total_steps");
  c.min_lr = static_cast<float>(meta_double(f, "warmup_cosine.min_lr"));
  expect_schedule(c, values(f, "warmup_cosine"));
}

}  // namespace
}  // namespace graft
