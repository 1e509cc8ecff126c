// The CPU recurrent kernels (LSTM, GRU) through the Ops interface, on both CPU backends:
// parity with PyTorch from tests/fixtures/golden_rnn.safetensors (tests/golden/make_rnn.py),
// and on fresh random inputs each run: finite-difference gradients, inference == training,
// partial backwards == the full one, zeros past the lengths, errors for bad geometry.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/geometry.h"
#include "kernels/ops.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::expect_error;
using testing::random_floats;
using testing::random_int;
using testing::relative_error;

// One layer's parameters per direction: w_ih, w_hh, b_ih, b_hh (PyTorch's layouts).
struct Params {
  std::vector<float> p[2][4];
  RnnWeights weights() const {
    RnnWeights w;
    for (int d = 0; d < 2; ++d) {
      w.w_ih[d] = p[d][0].empty() ? nullptr : p[d][0].data();
      w.w_hh[d] = p[d][1].empty() ? nullptr : p[d][1].data();
      w.b_ih[d] = p[d][2].empty() ? nullptr : p[d][2].data();
      w.b_hh[d] = p[d][3].empty() ? nullptr : p[d][3].data();
    }
    return w;
  }
};

Params random_params(const RnnGeometry& g) {
  const size_t gh = size_t(g.gates()) * g.hidden;
  Params p;
  for (int d = 0; d < g.directions(); ++d) {
    p.p[d][0] = random_floats(gh * g.input, -0.7f, 0.7f);
    p.p[d][1] = random_floats(gh * g.hidden, -0.7f, 0.7f);
    p.p[d][2] = random_floats(gh, -0.5f, 0.5f);
    p.p[d][3] = random_floats(gh, -0.5f, 0.5f);
  }
  return p;
}

// Gradients in Params' shapes; `want` false leaves them out (null pointers).
struct Grads {
  Params g;
  RnnGradients pointers(bool want) {
    RnnGradients r;
    if (!want) return r;
    for (int d = 0; d < 2; ++d) {
      r.w_ih[d] = g.p[d][0].empty() ? nullptr : g.p[d][0].data();
      r.w_hh[d] = g.p[d][1].empty() ? nullptr : g.p[d][1].data();
      r.b_ih[d] = g.p[d][2].empty() ? nullptr : g.p[d][2].data();
      r.b_hh[d] = g.p[d][3].empty() ? nullptr : g.p[d][3].data();
    }
    return r;
  }
};

Grads poisoned_like(const Params& p) {
  Grads g;
  for (int d = 0; d < 2; ++d)
    for (int k = 0; k < 4; ++k) g.g.p[d][k] = testing::poisoned(p.p[d][k].size());
  return g;
}

const int32_t* lengths_or_null(const std::vector<int32_t>& lengths) { return lengths.empty() ? nullptr : lengths.data(); }

struct Forward {
  std::vector<float> y, reserve;
};

// training: keeps a reserve for the backward; otherwise inference (reserve null).
Forward forward(Ops& ops, const RnnGeometry& g, const std::vector<float>& x, const std::vector<int32_t>& lengths,
                const Params& p, bool training = true) {
  Forward f;
  f.y = testing::poisoned(size_t(g.output_numel()));
  if (training) f.reserve = testing::poisoned(ops.rnn_reserve_floats(g));
  std::vector<float> workspace = testing::poisoned(ops.rnn_workspace_floats(g));
  const int32_t* len = lengths_or_null(lengths);
  ops.rnn_forward(g, x.data(), len, len, p.weights(), f.y.data(), training ? f.reserve.data() : nullptr,
                  workspace.data());
  return f;
}

struct Backward {
  std::vector<float> dx;
  Grads dw;
};

Backward backward(Ops& ops, const RnnGeometry& g, const std::vector<float>& x, const std::vector<int32_t>& lengths,
                  const Params& p, Forward f, const std::vector<float>& dy, bool want_dx = true, bool want_dw = true) {
  Backward b;
  if (want_dx) b.dx = testing::poisoned(size_t(g.input_numel()));
  b.dw = poisoned_like(p);
  std::vector<float> workspace = testing::poisoned(ops.rnn_workspace_floats(g));
  const int32_t* len = lengths_or_null(lengths);
  ops.rnn_backward(g, x.data(), len, len, p.weights(), f.y.data(), dy.data(), f.reserve.data(),
                   want_dx ? b.dx.data() : nullptr, b.dw.pointers(want_dw), workspace.data());
  return b;
}

std::vector<int32_t> random_lengths(int batch, int steps) {
  std::vector<int32_t> lengths(batch);
  for (auto& l : lengths) l = random_int(1, steps);
  lengths[random_int(0, batch - 1)] = steps;  // the longest runs the full sequence
  return lengths;
}

const char* kParamNames[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

// ---------------------------------------------------------------------------------------
// PyTorch parity

std::vector<float> tensor(const SafetensorsFile& f, const std::string& name) {
  const auto it = f.tensors.find(name);
  if (it == f.tensors.end()) {
    ADD_FAILURE() << "the fixture has no " << name;
    return {};
  }
  return it->second.to_floats();
}

std::string param_name(int k, int layer, int d) {
  return std::string(kParamNames[k]) + "_l" + std::to_string(layer) + (d ? "_reverse" : "");
}

void expect_parity(Ops& ops, const SafetensorsFile& f, const std::string& c) {
  SCOPED_TRACE(c + " on " + ops.name());
  const auto& xt = f.tensors.at(c + ".x");
  const auto& whh = f.tensors.at(c + ".weight_hh_l0");
  RnnGeometry g;
  g.batch = int(xt.shape[0]);
  g.steps = int(xt.shape[1]);
  g.input = int(xt.shape[2]);
  g.hidden = int(whh.shape[1]);
  g.cell = whh.shape[0] == 4 * whh.shape[1] ? RnnCell::LSTM : RnnCell::GRU;
  g.bidirectional = f.tensors.count(c + ".weight_hh_l0_reverse") > 0;
  const int layers = f.tensors.count(c + ".weight_hh_l1") ? 2 : 1;
  std::vector<int32_t> lengths;
  if (f.tensors.count(c + ".lengths"))
    for (float l : tensor(f, c + ".lengths")) lengths.push_back(int32_t(l));

  std::vector<RnnGeometry> geo(layers, g);
  std::vector<Params> params(layers);
  for (int l = 0; l < layers; ++l) {
    if (l > 0) geo[l].input = g.directions() * g.hidden;
    for (int d = 0; d < g.directions(); ++d)
      for (int k = 0; k < 4; ++k) params[l].p[d][k] = tensor(f, c + "." + param_name(k, l, d));
  }
  std::vector<std::vector<float>> inputs{tensor(f, c + ".x")};
  std::vector<Forward> fwd;
  for (int l = 0; l < layers; ++l) {
    fwd.push_back(forward(ops, geo[l], inputs[l], lengths, params[l]));
    inputs.push_back(fwd[l].y);
  }
  if (layers == 2) {
    EXPECT_LT(relative_error(fwd[0].y, tensor(f, c + ".y_l0")), 1e-5) << "layer 0's output";
  }
  EXPECT_LT(relative_error(fwd.back().y, tensor(f, c + ".y")), 1e-5) << "output";

  std::vector<float> dy = tensor(f, c + ".R");
  for (int l = layers - 1; l >= 0; --l) {
    Backward b = backward(ops, geo[l], inputs[l], lengths, params[l], fwd[l], dy);
    for (int d = 0; d < g.directions(); ++d)
      for (int k = 0; k < 4; ++k) {
        const std::string name = param_name(k, l, d);
        EXPECT_LT(relative_error(b.dw.g.p[d][k], tensor(f, c + ".grad." + name)), 2e-5) << "d" << name;
      }
    dy = b.dx;
  }
  EXPECT_LT(relative_error(dy, tensor(f, c + ".dx")), 2e-5) << "dx";
}

TEST(RnnKernel, MatchesPyTorchLstmAndGruOneTwoDirectionsStackedAndPackedLengths) {
  const auto f = read_safetensors(GRAFT_FIXTURE_DIR "/golden_rnn.safetensors");
  int cases = 0;
  for (const auto& [name, t] : f.tensors) {
    const auto dot = name.find('.');
    const std::string c = name.substr(0, dot);
    if (name.substr(dot) != ".x" || (c.rfind("lstm", 0) != 0 && c.rfind("gru", 0) != 0)) continue;
    ++cases;
    expect_parity(cpu_ops(), f, c);
    expect_parity(cpu_ops(true), f, c);
  }
  EXPECT_EQ(cases, 10);  // LSTM and GRU: uni, bi, uni_len, bi_len, bi2_len
}

// ---------------------------------------------------------------------------------------
// Fresh random inputs

RnnGeometry small_geometry(RnnCell cell, bool bidirectional) {
  RnnGeometry g;
  g.cell = cell;
  g.batch = 3;
  g.steps = 5;
  g.input = 3;
  g.hidden = 2;
  g.bidirectional = bidirectional;
  return g;
}

class RnnKernelCells : public ::testing::TestWithParam<std::tuple<RnnCell, bool>> {};

TEST_P(RnnKernelCells, GradientsMatchFiniteDifferencesWithLengths) {
  const auto [cell, bidirectional] = GetParam();
  const RnnGeometry g = small_geometry(cell, bidirectional);
  Ops& ops = cpu_ops();
  std::vector<float> x = random_floats(size_t(g.input_numel()));
  const auto lengths = random_lengths(g.batch, g.steps);
  Params p = random_params(g);
  const auto r = random_floats(size_t(g.output_numel()));
  const auto f = [&] { return testing::dot(forward(ops, g, x, lengths, p, false).y, r); };

  const Backward b = backward(ops, g, x, lengths, p, forward(ops, g, x, lengths, p), r);
  testing::expect_gradient_close(b.dx, testing::numerical_gradient(x, f), "dx");
  for (int d = 0; d < g.directions(); ++d)
    for (int k = 0; k < 4; ++k)
      testing::expect_gradient_close(b.dw.g.p[d][k], testing::numerical_gradient(p.p[d][k], f),
                                     std::string(kParamNames[k]) + (d ? "_reverse" : ""));
}

TEST_P(RnnKernelCells, InferenceEqualsTrainingAndPartialBackwardsEqualTheFullOne) {
  const auto [cell, bidirectional] = GetParam();
  RnnGeometry g = small_geometry(cell, bidirectional);
  g.batch = 4;
  g.steps = 7;
  g.input = 5;
  g.hidden = 6;
  Ops& ops = cpu_ops();
  const auto x = random_floats(size_t(g.input_numel()));
  const auto lengths = random_lengths(g.batch, g.steps);
  const Params p = random_params(g);
  const Forward train = forward(ops, g, x, lengths, p);
  EXPECT_EQ(forward(ops, g, x, lengths, p, false).y, train.y);

  const auto dy = random_floats(size_t(g.output_numel()));
  const Backward full = backward(ops, g, x, lengths, p, train, dy);
  const Backward dx_only = backward(ops, g, x, lengths, p, train, dy, true, false);
  const Backward dw_only = backward(ops, g, x, lengths, p, train, dy, false, true);
  EXPECT_EQ(dx_only.dx, full.dx);
  for (int d = 0; d < g.directions(); ++d)
    for (int k = 0; k < 4; ++k) EXPECT_EQ(dw_only.dw.g.p[d][k], full.dw.g.p[d][k]) << kParamNames[k] << " d" << d;
  // A second backward overwrites, it does not accumulate.
  EXPECT_EQ(backward(ops, g, x, lengths, p, train, dy).dw.g.p[0][1], full.dw.g.p[0][1]);
}

TEST_P(RnnKernelCells, OutputsPastTheLengthAreZeroAndPaddedStepsGetNoGradient) {
  const auto [cell, bidirectional] = GetParam();
  const RnnGeometry g = small_geometry(cell, bidirectional);
  Ops& ops = cpu_ops();
  auto x = random_floats(size_t(g.input_numel()));
  auto lengths = random_lengths(g.batch, g.steps);
  lengths[0] = 1 + random_int(0, g.steps - 2);  // at least one sequence is padded
  const Params p = random_params(g);
  const Forward f = forward(ops, g, x, lengths, p);
  const auto dy = random_floats(size_t(g.output_numel()));
  const Backward b = backward(ops, g, x, lengths, p, f, dy);
  const int width = g.directions() * g.hidden;
  for (int n = 0; n < g.batch; ++n)
    for (int t = lengths[n]; t < g.steps; ++t) {
      for (int j = 0; j < width; ++j) EXPECT_EQ(f.y[(size_t(n) * g.steps + t) * width + j], 0.0f) << n << "," << t;
      for (int i = 0; i < g.input; ++i) EXPECT_EQ(b.dx[(size_t(n) * g.steps + t) * g.input + i], 0.0f) << n << "," << t;
    }
  // What lies in the padding changes nothing inside the lengths.
  for (int n = 0; n < g.batch; ++n)
    for (int t = lengths[n]; t < g.steps; ++t)
      for (int i = 0; i < g.input; ++i) x[(size_t(n) * g.steps + t) * g.input + i] = 1e3f;
  EXPECT_EQ(forward(ops, g, x, lengths, p).y, f.y);
  // A sequence run alone with its length gives the same rows (the reverse direction starts
  // at step length-1, not at the padded end).
  RnnGeometry one = g;
  one.batch = 1;
  one.steps = lengths[0];
  const std::vector<float> x0(x.begin(), x.begin() + size_t(one.steps) * g.input);
  const Forward alone = forward(ops, one, x0, {}, p);
  EXPECT_LT(relative_error(alone.y.data(), f.y.data(), alone.y.size()), 1e-6);
}

std::string cell_name(const ::testing::TestParamInfo<std::tuple<RnnCell, bool>>& param_info) {
  return std::string(std::get<0>(param_info.param) == RnnCell::LSTM ? "Lstm" : "Gru") +
         (std::get<1>(param_info.param) ? "Bidirectional" : "Forward");
}
INSTANTIATE_TEST_SUITE_P(, RnnKernelCells,
                         ::testing::Combine(::testing::Values(RnnCell::LSTM, RnnCell::GRU), ::testing::Bool()),
                         cell_name);

TEST(RnnKernel, GeometryWithoutPositiveSizesIsRefusedByName) {
  Ops& ops = cpu_ops();
  const RnnGeometry good = small_geometry(RnnCell::GRU, true);
  const Params p = random_params(good);
  const auto x = random_floats(size_t(good.input_numel()));
  std::vector<float> y(size_t(good.output_numel())), workspace(ops.rnn_workspace_floats(good));
  for (int which = 0; which < 4; ++which) {
    RnnGeometry g = good;
    int* field[4] = {&g.batch, &g.steps, &g.input, &g.hidden};
    const char* names[4] = {"batch", "steps", "input", "hidden"};
    *field[which] = random_int(-3, 0);
    SCOPED_TRACE(names[which]);
    expect_error([&] { ops.rnn_forward(g, x.data(), nullptr, nullptr, p.weights(), y.data(), nullptr, workspace.data()); },
                 {"rnn_forward", names[which]});
  }
}

}  // namespace
}  // namespace graft
