// LSTM and GRU layers on the device, native per-step GEMMs (CudaOps) and cuDNN (LibOps),
// against the CPU reference (cpu_ops(true)) on fresh random inputs: one and two directions,
// full and variable lengths, sizes that are not multiples of 32; a training forward and the
// full backward, inference (no reserve), a frozen layer (no weight gradients), and a layer
// whose input needs no gradient (no dx). Outputs, workspace and reserve start as NaN.
// The native step loop also runs on the host (NativeKernelEmulation.*, no device needed),
// a captured native step graph replays right for lengths other than the recorded ones, and
// cuDNN's LSTM gives the same bits twice on the same inputs.
//
// Tolerance: kRnnTolerance = 1e-4 relative (max |a - b| / max |b|, testing.h). Rounding
// compounds through the recurrence (each step's state feeds the next), so a recurrent layer
// gets ten times the single-op fp32 bound; the native path measured ~1e-6 against PyTorch
// for 30 steps.
#include <cmath>
#include <cstring>
#include <iomanip>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gpu_testing.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/rnn.h"
#include "kernels/lib/ops_lib.h"

namespace graft::testing {
namespace {

constexpr double kRnnTolerance = 1e-4;
const char* const kTensorNames[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

RnnGeometry geometry(RnnCell cell, int batch, int steps, int input, int hidden, bool bidirectional) {
  RnnGeometry g;
  g.cell = cell;
  g.batch = batch;
  g.steps = steps;
  g.input = input;
  g.hidden = hidden;
  g.bidirectional = bidirectional;
  return g;
}

std::string describe(const RnnGeometry& g, bool lengths) {
  return std::string(g.cell == RnnCell::LSTM ? "LSTM" : "GRU") + " batch=" + std::to_string(g.batch) +
         " steps=" + std::to_string(g.steps) + " input=" + std::to_string(g.input) +
         " hidden=" + std::to_string(g.hidden) + (g.bidirectional ? " bidirectional" : " unidirectional") +
         (lengths ? " variable lengths" : " full lengths");
}

// Every combination of cell, directions and lengths over two shapes: a small one and one
// whose every size is off a multiple of 32 (and long enough to split the weight GEMMs' K);
// and the transfer demo's layer.
std::vector<std::pair<RnnGeometry, bool>> cases() {
  std::vector<std::pair<RnnGeometry, bool>> out;
  for (RnnCell cell : {RnnCell::LSTM, RnnCell::GRU})
    for (bool bidirectional : {false, true})
      for (bool lengths : {false, true}) {
        out.push_back({geometry(cell, 3, 5, 7, 9, bidirectional), lengths});
        out.push_back({geometry(cell, 37, 29, 33, 65, bidirectional), lengths});
      }
  out.push_back({geometry(RnnCell::LSTM, 64, 28, 28, 128, false), false});  // Fashion-MNIST row by row
  return out;
}

size_t tensor_size(const RnnGeometry& g, int k) {
  const size_t gh = size_t(g.gates()) * g.hidden;
  return k == 0 ? gh * g.input : k == 1 ? gh * g.hidden : gh;
}

// A layer's random inputs and the CPU reference's answers for them.
struct Problem {
  RnnGeometry g;
  std::vector<float> x, dy;
  std::vector<int32_t> lengths;           // empty: every sequence has all steps
  std::vector<float> params[2][4];        // [direction][weight_ih, weight_hh, bias_ih, bias_hh]
  std::vector<float> y, dx, dparams[2][4];  // the reference's

  const int32_t* host_lengths() const { return lengths.empty() ? nullptr : lengths.data(); }
  RnnWeights weights() const {
    RnnWeights w;
    for (int d = 0; d < g.directions(); ++d) {
      w.w_ih[d] = params[d][0].data();
      w.w_hh[d] = params[d][1].data();
      w.b_ih[d] = params[d][2].data();
      w.b_hh[d] = params[d][3].data();
    }
    return w;
  }
};

// The CPU reference's y, dx and weight gradients for p's values.
void compute_reference(Problem& p) {
  const RnnGeometry& g = p.g;
  Ops& cpu = cpu_ops(true);
  std::vector<float> reserve(cpu.rnn_reserve_floats(g)), workspace(cpu.rnn_workspace_floats(g));
  p.y.assign(size_t(g.output_numel()), 0.0f);
  p.dx.assign(size_t(g.input_numel()), 0.0f);
  RnnGradients dw;
  for (int d = 0; d < g.directions(); ++d) {
    for (int k = 0; k < 4; ++k) p.dparams[d][k].assign(tensor_size(g, k), 0.0f);
    dw.w_ih[d] = p.dparams[d][0].data();
    dw.w_hh[d] = p.dparams[d][1].data();
    dw.b_ih[d] = p.dparams[d][2].data();
    dw.b_hh[d] = p.dparams[d][3].data();
  }
  const RnnWeights w = p.weights();
  cpu.rnn_forward(g, p.x.data(), p.host_lengths(), p.host_lengths(), w, p.y.data(), reserve.data(), workspace.data());
  cpu.rnn_backward(g, p.x.data(), p.host_lengths(), p.host_lengths(), w, p.y.data(), p.dy.data(), reserve.data(),
                   p.dx.data(), dw, workspace.data());
}

// Random inputs, weights and lengths (the first sequence has one step, the second all).
Problem random_problem(const RnnGeometry& g, bool with_lengths) {
  Problem p;
  p.g = g;
  p.x = random_floats(size_t(g.input_numel()));
  p.dy = random_floats(size_t(g.output_numel()));
  if (with_lengths) {
    for (int b = 0; b < g.batch; ++b) p.lengths.push_back(random_int(1, g.steps));
    p.lengths[0] = 1;
    if (g.batch > 1) p.lengths[1] = g.steps;
  }
  for (int d = 0; d < g.directions(); ++d)
    for (int k = 0; k < 4; ++k) p.params[d][k] = random_floats(tensor_size(g, k), -0.5f, 0.5f);
  return p;
}

Problem make_problem(const RnnGeometry& g, bool with_lengths) {
  Problem p = random_problem(g, with_lengths);
  compute_reference(p);
  return p;
}

struct Want {
  bool training = true;  // false: inference, reserve == null, no backward
  bool dx = true;
  bool dw = true;
};

std::string describe(const Want& want) {
  if (!want.training) return "inference";
  return std::string(want.dx ? "dx" : "no dx") + (want.dw ? ", dw" : ", no dw (frozen)");
}

// What one backend gave for a problem.
struct Result {
  std::vector<float> y, dx, dparams[2][4];
};

void expect_matches(const Problem& p, const Result& r, const Want& want) {
  EXPECT_LT(relative_error(r.y, p.y), kRnnTolerance) << "y";
  if (!want.training) return;
  if (want.dx) {
    EXPECT_LT(relative_error(r.dx, p.dx), kRnnTolerance) << "dx";
  }
  if (!want.dw) return;
  for (int d = 0; d < p.g.directions(); ++d)
    for (int k = 0; k < 4; ++k) {
      EXPECT_LT(relative_error(r.dparams[d][k], p.dparams[d][k]), kRnnTolerance)
          << kTensorNames[k] << (d ? "_reverse" : "");
    }
}

// The layer's device buffers: inputs uploaded, everything the calls write poisoned.
struct DeviceLayer {
  DeviceArray<float> x, dy, y, dx, reserve, workspace;
  DeviceArray<int32_t> lengths;
  DeviceArray<float> params[2][4], dparams[2][4];

  DeviceLayer(Ops& ops, const Problem& p)
      : x(to_device(p.x)),
        dy(to_device(p.dy)),
        y(poisoned_device(size_t(p.g.output_numel()))),
        dx(poisoned_device(size_t(p.g.input_numel()))),
        reserve(poisoned_device(ops.rnn_reserve_floats(p.g))),
        workspace(poisoned_device(ops.rnn_workspace_floats(p.g))) {
    if (!p.lengths.empty()) lengths = to_device(p.lengths);
    for (int d = 0; d < p.g.directions(); ++d)
      for (int k = 0; k < 4; ++k) {
        params[d][k] = to_device(p.params[d][k]);
        dparams[d][k] = poisoned_device(p.params[d][k].size());
      }
  }
  RnnWeights weights(const RnnGeometry& g) const {
    RnnWeights w;
    for (int d = 0; d < g.directions(); ++d) {
      w.w_ih[d] = params[d][0].get();
      w.w_hh[d] = params[d][1].get();
      w.b_ih[d] = params[d][2].get();
      w.b_hh[d] = params[d][3].get();
    }
    return w;
  }
  RnnGradients gradients(const RnnGeometry& g) const {
    RnnGradients dw;
    for (int d = 0; d < g.directions(); ++d) {
      dw.w_ih[d] = dparams[d][0].get();
      dw.w_hh[d] = dparams[d][1].get();
      dw.b_ih[d] = dparams[d][2].get();
      dw.b_hh[d] = dparams[d][3].get();
    }
    return dw;
  }
  // Queues the calls (nothing waits: this is what a captured step records).
  void launch(Ops& ops, const Problem& p, const Want& want) {
    const RnnGeometry& g = p.g;
    const RnnWeights w = weights(g);
    float* keep = want.training ? reserve.get() : nullptr;
    ops.rnn_forward(g, x.get(), p.host_lengths(), lengths.get(), w, y.get(), keep, workspace.get());
    if (want.training)
      ops.rnn_backward(g, x.get(), p.host_lengths(), lengths.get(), w, y.get(), dy.get(), keep,
                       want.dx ? dx.get() : nullptr, want.dw ? gradients(g) : RnnGradients{}, workspace.get());
  }
  void run(Ops& ops, const Problem& p, const Want& want) {
    launch(ops, p, want);
    ops.synchronize();
  }
  Result download(const RnnGeometry& g) const {
    Result r;
    r.y = y.download();
    r.dx = dx.download();
    for (int d = 0; d < g.directions(); ++d)
      for (int k = 0; k < 4; ++k) r.dparams[d][k] = dparams[d][k].download();
    return r;
  }
};

class RnnGpu : public GpuTest {
 protected:
  std::unique_ptr<Ops> make_ops(Impl impl) {
    if (impl == Impl::Native) return std::make_unique<cuda::CudaOps>(pool());
    return std::make_unique<lib::LibOps>(pool());
  }

  void against_reference(Impl impl, const Want& want) {
    auto ops = make_ops(impl);
    for (const auto& [g, with_lengths] : cases()) {
      SCOPED_TRACE(describe(g, with_lengths) + ", " + describe(want) + ", " + name(impl));
      const Problem p = make_problem(g, with_lengths);
      DeviceLayer layer(*ops, p);
      layer.run(*ops, p, want);
      const Result r = layer.download(g);
      expect_matches(p, r, want);
      if (!want.dx) {
        EXPECT_TRUE(std::isnan(r.dx[0])) << "dx was written although not wanted";
      }
      if (!want.dw) {
        EXPECT_TRUE(std::isnan(r.dparams[0][0][0])) << "a frozen layer's weight gradient was written";
      }
    }
  }
};

TEST_F(RnnGpu, NativeTrainingForwardAndBackward) { against_reference(Impl::Native, {}); }
TEST_F(RnnGpu, LibraryTrainingForwardAndBackward) { against_reference(Impl::Library, {}); }
TEST_F(RnnGpu, NativeInference) { against_reference(Impl::Native, {false, false, false}); }
TEST_F(RnnGpu, LibraryInference) { against_reference(Impl::Library, {false, false, false}); }
TEST_F(RnnGpu, NativeFrozenLayerComputesOnlyDx) { against_reference(Impl::Native, {true, true, false}); }
TEST_F(RnnGpu, LibraryFrozenLayerComputesOnlyDx) { against_reference(Impl::Library, {true, true, false}); }
TEST_F(RnnGpu, NativeFirstTrainableLayerComputesOnlyDw) { against_reference(Impl::Native, {true, false, true}); }
TEST_F(RnnGpu, LibraryFirstTrainableLayerComputesOnlyDw) { against_reference(Impl::Library, {true, false, true}); }

// The native kernels read lengths only from device memory: a step graph recorded with one
// set of lengths, replayed after new lengths are written to the same buffer, gives the CPU
// reference's answer for the new ones (the executor records a step once and replays it for
// every batch).
TEST_F(RnnGpu, NativeCapturedStepReplaysWithOtherLengths) {
  cuda::CudaOps ops(pool());
  const RnnGeometry g = geometry(random_int(0, 1) ? RnnCell::LSTM : RnnCell::GRU, 19, 17, 23, 41, true);
  SCOPED_TRACE(describe(g, true));
  Problem recorded = make_problem(g, true);
  DeviceLayer layer(ops, recorded);
  const Want want;
  ASSERT_TRUE(ops.begin_capture());
  layer.launch(ops, recorded, want);  // host_lengths are only checked on the host
  const int graph = ops.end_capture();
  ASSERT_GE(graph, 0);

  // Same inputs and weights, new lengths and a new dy.
  Problem next = recorded;
  for (auto& len : next.lengths) len = random_int(1, g.steps);
  next.lengths[0] = g.steps;
  next.dy = random_floats(next.dy.size());
  compute_reference(next);
  layer.lengths.upload(next.lengths);
  layer.dy.upload(next.dy);
  ops.replay(graph);
  ops.synchronize();
  expect_matches(next, layer.download(g), want);
}

// graft's --deterministic promises a bit-identical resume, so cuDNN's LSTM (LibOps) must give
// the same bits twice: forward and full backward run twice on the same inputs, each time into
// freshly poisoned buffers, give bitwise-identical y, dx and weight gradients. (Whether cuDNN's
// RNN backward is run-to-run deterministic is not documented; this test is where it shows.)
TEST_F(RnnGpu, LibraryLstmIsBitwiseRepeatable) {
  lib::LibOps ops(pool());
  for (bool bidirectional : {false, true}) {
    const RnnGeometry g = geometry(RnnCell::LSTM, 37, 29, 33, 65, bidirectional);
    SCOPED_TRACE(describe(g, true));
    const Problem p = random_problem(g, true);
    Result runs[2];
    for (Result& r : runs) {
      DeviceLayer layer(ops, p);
      layer.run(ops, p, Want{});
      r = layer.download(g);
    }
    EXPECT_EQ(runs[0].y, runs[1].y) << "y: " << first_difference(runs[0].y, runs[1].y);
    EXPECT_EQ(runs[0].dx, runs[1].dx) << "dx: " << first_difference(runs[0].dx, runs[1].dx);
    for (int d = 0; d < g.directions(); ++d)
      for (int k = 0; k < 4; ++k) {
        const auto &a = runs[0].dparams[d][k], &b = runs[1].dparams[d][k];
        EXPECT_EQ(a, b) << kTensorNames[k] << (d ? "_reverse" : "") << ": " << first_difference(a, b);
      }
  }
}

// Mistakes a caller can make are named, before anything runs.
TEST_F(RnnGpu, BadCallsAreNamed) {
  cuda::CudaOps native(pool());
  lib::LibOps library(pool());
  const RnnGeometry g = geometry(RnnCell::LSTM, 3, 4, 5, 6, false);
  Problem p = make_problem(g, true);
  DeviceLayer layer(native, p);
  for (Ops* ops : {static_cast<Ops*>(&native), static_cast<Ops*>(&library)}) {
    SCOPED_TRACE(ops->name());
    std::vector<int32_t> bad = p.lengths;
    bad[2] = g.steps + 1;
    expect_error([&] { ops->rnn_forward(g, layer.x.get(), bad.data(), layer.lengths.get(), layer.weights(g),
                                        layer.y.get(), nullptr, layer.workspace.get()); },
                 {"sequence 2 has length 5", "1..4"});
    RnnWeights missing = layer.weights(g);
    missing.w_hh[0] = nullptr;
    expect_error([&] { ops->rnn_forward(g, layer.x.get(), nullptr, nullptr, missing, layer.y.get(), nullptr,
                                        layer.workspace.get()); },
                 {"forward direction's weights are missing"});
    expect_error([&] { ops->rnn_backward(g, layer.x.get(), nullptr, nullptr, layer.weights(g), layer.y.get(),
                                         layer.dy.get(), nullptr, layer.dx.get(), RnnGradients{},
                                         layer.workspace.get()); },
                 {"reserve"});
  }
  expect_error([&] { library.rnn_forward(g, layer.x.get(), nullptr, layer.lengths.get(), layer.weights(g),
                                         layer.y.get(), nullptr, layer.workspace.get()); },
               {"both in device memory and on the host"});
}

// ---- no device needed: the native step loop on the host ----

Result emulate(const Problem& p, const Want& want) {
  const RnnGeometry& g = p.g;
  Result r;
  r.y = poisoned(size_t(g.output_numel()));
  r.dx = poisoned(size_t(g.input_numel()));
  RnnGradients dw;
  for (int d = 0; d < g.directions(); ++d) {
    for (int k = 0; k < 4; ++k) r.dparams[d][k] = poisoned(p.params[d][k].size());
    dw.w_ih[d] = r.dparams[d][0].data();
    dw.w_hh[d] = r.dparams[d][1].data();
    dw.b_ih[d] = r.dparams[d][2].data();
    dw.b_hh[d] = r.dparams[d][3].data();
  }
  std::vector<float> reserve = poisoned(cuda::rnn_reserve_floats(g));
  std::vector<float> workspace = poisoned(cuda::rnn_workspace_floats(g));
  float* keep = want.training ? reserve.data() : nullptr;
  cuda::host_emulation::rnn_forward(g, p.x.data(), p.host_lengths(), p.weights(), r.y.data(), keep, workspace.data());
  if (want.training)
    cuda::host_emulation::rnn_backward(g, p.x.data(), p.host_lengths(), p.weights(), p.dy.data(), keep,
                                       want.dx ? r.dx.data() : nullptr, want.dw ? dw : RnnGradients{},
                                       workspace.data());
  return r;
}

TEST(NativeKernelEmulation, RnnAgainstTheCpuReference) {
  for (const auto& [g, with_lengths] : cases())
    for (const Want& want : {Want{}, Want{false, false, false}, Want{true, true, false}, Want{true, false, true}}) {
      SCOPED_TRACE(describe(g, with_lengths) + ", " + describe(want));
      const Problem p = make_problem(g, with_lengths);
      expect_matches(p, emulate(p, want), want);
    }
}

// The emulated backward against central differences of the emulated forward (of
// L = sum y * dy), for x and every weight: the step loop's calculus on its own, whatever
// the reference says.
TEST(NativeKernelEmulation, RnnGradientsMatchFiniteDifferences) {
  for (RnnCell cell : {RnnCell::LSTM, RnnCell::GRU}) {
    const RnnGeometry g = geometry(cell, 3, 4, 3, 5, true);
    SCOPED_TRACE(describe(g, true));
    Problem p = random_problem(g, true);
    const Result r = emulate(p, Want{});
    std::vector<float> y(p.dy.size()), workspace(cuda::rnn_workspace_floats(g));
    auto loss = [&] {
      cuda::host_emulation::rnn_forward(g, p.x.data(), p.host_lengths(), p.weights(), y.data(), nullptr,
                                        workspace.data());
      return dot(y, p.dy);
    };
    expect_gradient_close(r.dx, numerical_gradient(p.x, loss), "dx");
    for (int d = 0; d < 2; ++d)
      for (int k = 0; k < 4; ++k)
        expect_gradient_close(r.dparams[d][k], numerical_gradient(p.params[d][k], loss),
                              std::string(kTensorNames[k]) + (d ? "_reverse" : ""));
  }
}

TEST(NativeKernelEmulation, RnnLengthsOutsideTheBatchAreNamed) {
  const RnnGeometry g = geometry(RnnCell::GRU, 2, 3, 2, 2, true);
  const auto x = random_floats(size_t(g.input_numel()));
  std::vector<float> params[4];
  RnnWeights w;
  for (int d = 0; d < 2; ++d) {
    for (int k = 0; k < 4; ++k) params[k] = random_floats(tensor_size(g, k));
    w.w_ih[d] = params[0].data();
    w.w_hh[d] = params[1].data();
    w.b_ih[d] = params[2].data();
    w.b_hh[d] = params[3].data();
  }
  std::vector<float> y(size_t(g.output_numel())), workspace(cuda::rnn_workspace_floats(g));
  const std::vector<int32_t> zero = {3, 0};
  expect_error(
      [&] { cuda::host_emulation::rnn_forward(g, x.data(), zero.data(), w, y.data(), nullptr, workspace.data()); },
               {"rnn_forward", "sequence 1 has length 0", "1..3"});
}

}  // namespace
}  // namespace graft::testing
