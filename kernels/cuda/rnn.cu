// LSTM and GRU layers, hand-written CUDA, per-step GEMM formulation (kernels/cuda/rnn.h,
// docs/kernels-rnn.md). The step loop is written once over an executor: DeviceExec launches
// the tiled GEMM (kernels/cuda/launch.cuh) and the fused step kernels on a stream, HostExec
// runs the same problems and functors on the host (host_emulation).
//
// Steps, not times: direction d's step s is time s (forward) or len-1-s (reverse) of a
// sequence of length len, and a sequence whose steps are done (s >= len) writes zeros at time
// s, so every time of every row is written exactly once per direction. States and gates are
// kept in step order, which makes the recurrence the same loop for both directions.
//
// Reserve, per direction: gates [steps][batch][4*hidden] (LSTM i, f, g, o after their
// activations; GRU r, z, n and W_hn h + b_hn), h [steps+1][batch][hidden] and, for the LSTM,
// c [steps+1][batch][hidden]; block 0 of h and c is the zero initial state, block s+1 the
// state after step s.
#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/rnn.h"
#include "kernels/cuda/sequence.h"

namespace graft::cuda {

namespace {

constexpr int64_t kAlign = 64;  // floats: every region starts 256-byte aligned
int64_t aligned(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// ---- where everything lives ----

struct Layout {
  int B, T, I, H, G, D;
  bool lstm;
  int64_t GH;
  // reserve, per direction
  int64_t gates_floats, h_floats, c_floats, direction_reserve;
  // workspace: forward
  int64_t xg, hg, state, forward_end;
  // workspace: backward
  int64_t dxg, dhg, dhrec, carry, split, split_floats, backward_end;

  explicit Layout(const RnnGeometry& g)
      : B(g.batch), T(g.steps), I(g.input), H(g.hidden), G(g.gates()), D(g.directions()),
        lstm(g.cell == RnnCell::LSTM), GH(int64_t{g.gates()} * g.hidden) {
    const int64_t BH = int64_t{B} * H;
    gates_floats = aligned(int64_t{T} * B * 4 * H);
    h_floats = aligned((int64_t{T} + 1) * BH);
    c_floats = lstm ? h_floats : 0;
    direction_reserve = gates_floats + h_floats + c_floats;

    xg = 0;
    hg = xg + aligned(int64_t{B} * T * D * GH);
    state = hg + aligned(D * B * GH);
    forward_end = state + D * 2 * aligned(2 * BH);  // inference: h and c, two buffers each

    dxg = 0;
    dhg = dxg + aligned(int64_t{B} * T * D * GH);
    dhrec = dhg + D * aligned(int64_t{T} * B * GH);
    carry = dhrec + D * aligned(BH);
    split = carry + D * aligned(BH);
    // The weight GEMMs' split-K slices, with or without the bias column (the split depends
    // on the shape, so the larger of the two is kept).
    size_t most = 0;
    for (int bias = 0; bias < 2; ++bias)
      most = std::max({most, detail::gemm_workspace_floats(D * GH, I + bias, B * T),
                       detail::gemm_workspace_floats(GH, H + bias, T * B)});
    split_floats = static_cast<int64_t>(most);
    backward_end = split + aligned(split_floats);
  }

  float* gates(float* reserve, int d) const { return reserve + d * direction_reserve; }
  float* h_all(float* reserve, int d) const { return reserve + d * direction_reserve + gates_floats; }
  float* c_all(float* reserve, int d) const { return reserve + d * direction_reserve + gates_floats + h_floats; }
};

// ---- GEMM problems (the tiled kernel's interface, launch.cuh) ----

// C[m, n] = sum_k A[m, k] W(n)[n', k] + bias(n)[n']: rows of A times a weight in PyTorch's
// [out, in] layout. Columns [0, N0) use W0/b0, [N0, N) W1/b1 (n' = n - N0): both directions'
// input projections in one GEMM.
struct LinearProblem {
  const float* A;
  const float* W0;
  const float* W1;
  const float* b0;
  const float* b1;
  float* C;
  int64_t M;
  int N, K, N0;
  static constexpr bool kAContiguousK = true;
  static constexpr bool kBContiguousN = false;
  __host__ __device__ float a(int64_t m, int k) const { return A[m * K + k]; }
  __host__ __device__ float b(int k, int n) const {
    return n < N0 ? W0[int64_t{n} * K + k] : W1[int64_t{n - N0} * K + k];
  }
  __host__ __device__ void store(int64_t m, int n, float acc) const {
    const float* bias = n < N0 ? b0 : b1;
    C[m * N + n] = bias ? acc + bias[n < N0 ? n : n - N0] : acc;
  }
};

// C[m, n] = sum_k A[m, k] W(k)[k', n]: gate gradients times a weight, back to its input.
// Rows [0, K0) of the stacked weight are W0, the rest W1 (k' = k - K0): both directions' dx in
// one GEMM.
struct BackDataProblem {
  const float* A;
  const float* W0;
  const float* W1;
  float* C;
  int64_t M;
  int N, K, K0;
  static constexpr bool kAContiguousK = true;
  static constexpr bool kBContiguousN = true;
  __host__ __device__ float a(int64_t m, int k) const { return A[m * K + k]; }
  __host__ __device__ float b(int k, int n) const {
    return k < K0 ? W0[int64_t{k} * N + n] : W1[int64_t{k - K0} * N + n];
  }
  __host__ __device__ void store(int64_t m, int n, float acc) const { C[m * N + n] = acc; }
};

// dW[m, n] = sum_k Gr[k, m] X[k, n] over all rows k (steps and batch), and with a column of
// ones (n == in) the bias gradient. Rows m of direction m / per_dir; a null pointer is a
// gradient nobody wants.
struct WeightGradProblem {
  const float* Gr;
  int64_t ldg;
  const float* X;
  int in;
  float* dw0;
  float* dw1;
  float* db0;
  float* db1;
  int per_dir;
  int64_t M;
  int N, K;
  static constexpr bool kAContiguousK = false;
  static constexpr bool kBContiguousN = true;
  __host__ __device__ float a(int64_t m, int k) const { return Gr[int64_t{k} * ldg + m]; }
  __host__ __device__ float b(int k, int n) const { return n < in ? X[int64_t{k} * in + n] : 1.0f; }
  __host__ __device__ void store(int64_t m, int n, float acc) const {
    const bool second = m >= per_dir;
    const int64_t r = second ? m - per_dir : m;
    if (n < in) {
      float* dw = second ? dw1 : dw0;
      if (dw) dw[r * in + n] = acc;
    } else {
      float* db = second ? db1 : db0;
      if (db) db[r] = acc;
    }
  }
};

// ---- the fused step kernels ----

GRAFT_HD float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// The time a direction's step s touches in a sequence of length len (see the file comment).
GRAFT_HD int time_of(int d, int s, int len) { return (d == 0 || s >= len) ? s : len - 1 - s; }

struct ForwardStep {
  int B, T, H, D, s;
  bool lstm;
  const int32_t* lengths;
  const float* xg;  // [B*T][D*GH], input projections with b_ih
  const float* hg;  // [D][B][GH], recurrent projections with b_hh
  const float* h_prev[2];
  const float* c_prev[2];
  float* h_next[2];
  float* c_next[2];
  float* gates[2];  // [B][4H] of this step, or null (inference)
  float* y;         // [B*T][D*H]

  GRAFT_HD void operator()(int64_t i) const {
    const int j = static_cast<int>(i % H);
    const int b = static_cast<int>((i / H) % B);
    const int d = static_cast<int>(i / (int64_t{H} * B));
    const int len = sequence_length(lengths, b, T);
    const bool active = s < len;
    const int64_t row = int64_t{b} * T + time_of(d, s, len);
    const int64_t bj = int64_t{b} * H + j;
    const int64_t GH = int64_t{lstm ? 4 : 3} * H;
    float* gate = gates[d] ? gates[d] + int64_t{b} * 4 * H + j : nullptr;
    float* yv = y + row * D * H + int64_t{d} * H + j;
    if (!active) {  // done: zeros, so nothing later reads a stale value (0 * NaN is NaN)
      *yv = 0.0f;
      h_next[d][bj] = 0.0f;
      if (lstm) c_next[d][bj] = 0.0f;
      if (gate)
        for (int q = 0; q < 4; ++q) gate[int64_t{q} * H] = 0.0f;
      return;
    }
    const float* xr = xg + row * D * GH + d * GH + j;
    const float* hr = hg + (int64_t{d} * B + b) * GH + j;
    float h;
    if (lstm) {
      const float ig = sigmoid(xr[0] + hr[0]);
      const float fg = sigmoid(xr[H] + hr[H]);
      const float gg = tanhf(xr[2 * H] + hr[2 * H]);
      const float og = sigmoid(xr[3 * H] + hr[3 * H]);
      const float c = fg * c_prev[d][bj] + ig * gg;
      h = og * tanhf(c);
      c_next[d][bj] = c;
      if (gate) {
        gate[0] = ig;
        gate[H] = fg;
        gate[2 * H] = gg;
        gate[3 * H] = og;
      }
    } else {
      const float r = sigmoid(xr[0] + hr[0]);
      const float z = sigmoid(xr[H] + hr[H]);
      const float hn = hr[2 * H];
      const float n = tanhf(xr[2 * H] + r * hn);
      h = (1.0f - z) * n + z * h_prev[d][bj];
      if (gate) {
        gate[0] = r;
        gate[H] = z;
        gate[2 * H] = n;
        gate[3 * H] = hn;
      }
    }
    h_next[d][bj] = h;
    *yv = h;
  }
};

// Step s of the backward. dh = dy at the step's time + what step s+1 sent back through the
// recurrence: dhrec = (gate gradients of s+1) W_hh, and `carry` (LSTM: dc * f; GRU: dh * z).
// Writes the pre-activation gradients for the input projection (dxg, time order, with
// b_ih's) and for the recurrent one (dhg, step order, with b_hh's; the same values for the
// LSTM, the n gate's r * ... for the GRU), and the carry for step s-1.
struct BackwardStep {
  int B, T, H, D, s;
  bool lstm, first;  // first: s == T-1, nothing comes back from a later step
  const int32_t* lengths;
  const float* dy;  // [B*T][D*H]
  const float* gates[2];
  const float* h_prev[2];
  const float* c_prev[2];
  const float* c_cur[2];
  const float* dhrec[2];
  float* carry[2];
  float* dxg;     // [B*T][D*GH] or null
  float* dhg[2];  // [B][GH] of this step

  GRAFT_HD void operator()(int64_t i) const {
    const int j = static_cast<int>(i % H);
    const int b = static_cast<int>((i / H) % B);
    const int d = static_cast<int>(i / (int64_t{H} * B));
    const int G = lstm ? 4 : 3;
    const int64_t GH = int64_t{G} * H;
    const int len = sequence_length(lengths, b, T);
    const int64_t row = int64_t{b} * T + time_of(d, s, len);
    const int64_t bj = int64_t{b} * H + j;
    float* gx = dxg ? dxg + row * D * GH + d * GH + j : nullptr;
    float* gh = dhg[d] + int64_t{b} * GH + j;
    if (s >= len) {
      for (int q = 0; q < G; ++q) {
        if (gx) gx[int64_t{q} * H] = 0.0f;
        gh[int64_t{q} * H] = 0.0f;
      }
      carry[d][bj] = 0.0f;
      return;
    }
    const float* gate = gates[d] + int64_t{b} * 4 * H + j;
    float dh = dy[row * D * H + int64_t{d} * H + j];
    float carried = 0.0f;
    if (!first) {
      dh += dhrec[d][bj];
      carried = carry[d][bj];
    }
    if (lstm) {
      const float ig = gate[0], fg = gate[H], gg = gate[2 * H], og = gate[3 * H];
      const float tc = tanhf(c_cur[d][bj]);
      const float dc = dh * og * (1.0f - tc * tc) + carried;
      const float da[4] = {dc * gg * ig * (1.0f - ig), dc * c_prev[d][bj] * fg * (1.0f - fg),
                           dc * ig * (1.0f - gg * gg), dh * tc * og * (1.0f - og)};
      for (int q = 0; q < 4; ++q) {
        if (gx) gx[int64_t{q} * H] = da[q];
        gh[int64_t{q} * H] = da[q];
      }
      carry[d][bj] = dc * fg;
    } else {
      dh += carried;
      const float r = gate[0], z = gate[H], n = gate[2 * H], hn = gate[3 * H];
      const float dn = dh * (1.0f - z) * (1.0f - n * n);
      const float dz = dh * (h_prev[d][bj] - n) * z * (1.0f - z);
      const float dr = dn * hn * r * (1.0f - r);
      if (gx) {
        gx[0] = dr;
        gx[H] = dz;
        gx[2 * H] = dn;
      }
      gh[0] = dr;
      gh[H] = dz;
      gh[2 * H] = dn * r;
      carry[d][bj] = dh * z;
    }
  }
};

// ---- executors ----

template <class F>
__global__ void each_kernel(int64_t n, F f) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) f(i);
}

struct DeviceExec {
  cudaStream_t stream;
  template <class F>
  void each(int64_t n, const F& f) const {
    if (n <= 0) return;
    each_kernel<F><<<detail::grid_for(n), detail::kThreads, 0, stream>>>(n, f);
    GRAFT_CUDA_CHECK_LAUNCH();
  }
  template <class P>
  void gemm(const P& p, float* split_workspace) const {
    detail::launch_gemm(p, stream, split_workspace);
  }
  void zero(float* p, int64_t n) const {
    GRAFT_CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(float) * static_cast<size_t>(n), stream));
  }
};

struct HostExec {
  template <class F>
  void each(int64_t n, const F& f) const {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
  template <class P>
  void gemm(const P& p, float* split_workspace) const {
    detail::emulate_gemm_on_host(p, split_workspace != nullptr);
  }
  void zero(float* p, int64_t n) const { std::fill(p, p + n, 0.0f); }
};

// ---- the step loops ----

template <class Exec>
void forward_impl(const Exec& ex, const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w,
                  float* y, float* reserve, float* workspace) {
  const Layout L(g);
  const int64_t BH = int64_t{L.B} * L.H;
  float* xg = workspace + L.xg;
  float* hg = workspace + L.hg;
  ex.gemm(LinearProblem{x, w.w_ih[0], w.w_ih[1], w.b_ih[0], w.b_ih[1], xg, int64_t{L.B} * L.T,
                        static_cast<int>(L.D * L.GH), L.I, static_cast<int>(L.GH)},
          nullptr);

  // Training: states in the reserve, one block per step. Inference: two blocks per state,
  // used in turn.
  float* h_base[2] = {nullptr, nullptr};
  float* c_base[2] = {nullptr, nullptr};
  for (int d = 0; d < L.D; ++d) {
    if (reserve) {
      h_base[d] = L.h_all(reserve, d);
      c_base[d] = L.lstm ? L.c_all(reserve, d) : nullptr;
    } else {
      h_base[d] = workspace + L.state + d * 2 * aligned(2 * BH);
      c_base[d] = h_base[d] + aligned(2 * BH);
    }
    ex.zero(h_base[d], BH);
    if (L.lstm) ex.zero(c_base[d], BH);
  }
  auto block = [&](float* base, int s) { return base ? base + (reserve ? s : s % 2) * BH : nullptr; };

  for (int s = 0; s < L.T; ++s) {
    ForwardStep step{L.B, L.T, L.H, L.D, s, L.lstm, lengths, xg, hg, {}, {}, {}, {}, {}, y};
    for (int d = 0; d < L.D; ++d) {
      step.h_prev[d] = block(h_base[d], s);
      step.h_next[d] = block(h_base[d], s + 1);
      step.c_prev[d] = block(c_base[d], s);
      step.c_next[d] = block(c_base[d], s + 1);
      step.gates[d] = reserve ? L.gates(reserve, d) + int64_t{s} * L.B * 4 * L.H : nullptr;
      ex.gemm(LinearProblem{step.h_prev[d], w.w_hh[d], nullptr, w.b_hh[d], nullptr, hg + d * L.B * L.GH, L.B,
                            static_cast<int>(L.GH), L.H, static_cast<int>(L.GH)},
              nullptr);
    }
    ex.each(int64_t{L.D} * BH, step);
  }
}

template <class Exec>
void backward_impl(const Exec& ex, const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w,
                   const float* dy, const float* reserve_in, float* dx, const RnnGradients& dw, float* workspace) {
  const Layout L(g);
  const int64_t BH = int64_t{L.B} * L.H;
  bool want_ih = false, want_hh = false;
  for (int d = 0; d < L.D; ++d) {
    want_ih = want_ih || dw.w_ih[d] || dw.b_ih[d];
    want_hh = want_hh || dw.w_hh[d] || dw.b_hh[d];
  }
  if (!dx && !want_ih && !want_hh) return;
  GRAFT_ASSERT(reserve_in, "rnn_backward needs the reserve a training forward filled (its forward ran with "
                           "reserve == null, as inference)");
  float* reserve = const_cast<float*>(reserve_in);  // read only; Layout's accessors are shared with the forward
  float* dxg = (dx || want_ih) ? workspace + L.dxg : nullptr;
  float* dhg_base[2] = {nullptr, nullptr};
  float* dhrec[2] = {nullptr, nullptr};
  float* carry[2] = {nullptr, nullptr};
  for (int d = 0; d < L.D; ++d) {
    dhg_base[d] = workspace + L.dhg + d * aligned(int64_t{L.T} * L.B * L.GH);
    dhrec[d] = workspace + L.dhrec + d * aligned(BH);
    carry[d] = workspace + L.carry + d * aligned(BH);
  }

  for (int s = L.T - 1; s >= 0; --s) {
    BackwardStep step{L.B, L.T, L.H, L.D, s, L.lstm, s == L.T - 1, lengths, dy, {}, {}, {}, {}, {}, {}, dxg, {}};
    for (int d = 0; d < L.D; ++d) {
      step.gates[d] = L.gates(reserve, d) + int64_t{s} * L.B * 4 * L.H;
      step.h_prev[d] = L.h_all(reserve, d) + s * BH;
      if (L.lstm) {
        step.c_prev[d] = L.c_all(reserve, d) + s * BH;
        step.c_cur[d] = L.c_all(reserve, d) + (s + 1) * BH;
      }
      step.dhrec[d] = dhrec[d];
      step.carry[d] = carry[d];
      step.dhg[d] = dhg_base[d] + int64_t{s} * L.B * L.GH;
      if (s < L.T - 1)
        ex.gemm(BackDataProblem{dhg_base[d] + int64_t{s + 1} * L.B * L.GH, w.w_hh[d], nullptr, dhrec[d], L.B, L.H,
                                static_cast<int>(L.GH), static_cast<int>(L.GH)},
                nullptr);
    }
    ex.each(int64_t{L.D} * BH, step);
  }

  const int rows = L.B * L.T;
  float* split = L.split_floats > 0 ? workspace + L.split : nullptr;
  if (dx)
    ex.gemm(BackDataProblem{dxg, w.w_ih[0], w.w_ih[1], dx, rows, L.I, static_cast<int>(L.D * L.GH),
                            static_cast<int>(L.GH)},
            nullptr);
  if (want_ih) {
    const bool bias = dw.b_ih[0] || dw.b_ih[1];
    ex.gemm(WeightGradProblem{dxg, L.D * L.GH, x, L.I, dw.w_ih[0], L.D > 1 ? dw.w_ih[1] : nullptr, dw.b_ih[0],
                              L.D > 1 ? dw.b_ih[1] : nullptr, static_cast<int>(L.GH), L.D * L.GH,
                              L.I + (bias ? 1 : 0), rows},
            split);
  }
  for (int d = 0; d < L.D && want_hh; ++d) {
    if (!dw.w_hh[d] && !dw.b_hh[d]) continue;
    // h_prev of step s is block s: blocks 0..T-1 pair with the gate gradients of steps 0..T-1.
    ex.gemm(WeightGradProblem{dhg_base[d], L.GH, L.h_all(reserve, d), L.H, dw.w_hh[d], nullptr, dw.b_hh[d], nullptr,
                              static_cast<int>(L.GH), L.GH, L.H + (dw.b_hh[d] ? 1 : 0), L.T * L.B},
            split);
  }
}

void check_pointers(const char* op, const float* x, const float* y) {
  GRAFT_ASSERT(x && y, op, ": null input or output");
}

}  // namespace

void check_rnn_call(const char* op, const RnnGeometry& g, const RnnWeights& w, const int32_t* host_lengths) {
  GRAFT_ASSERT(g.batch > 0 && g.steps > 0 && g.input > 0 && g.hidden > 0, op, ": bad recurrent layer shape: batch ",
               g.batch, ", steps ", g.steps, ", input ", g.input, ", hidden ", g.hidden, " (each must be at least 1)");
  for (int d = 0; d < g.directions(); ++d)
    GRAFT_ASSERT(w.w_ih[d] && w.w_hh[d] && w.b_ih[d] && w.b_hh[d], op, ": the ", d == 0 ? "forward" : "reverse",
                 " direction's weights are missing (weight_ih, weight_hh, bias_ih and bias_hh are all needed)");
  if (host_lengths)
    for (int b = 0; b < g.batch; ++b)
      GRAFT_ASSERT(host_lengths[b] >= 1 && host_lengths[b] <= g.steps, op, ": sequence ", b, " has length ",
                   host_lengths[b], "; lengths must be 1..", g.steps, " (the batch's steps)");
}

size_t rnn_reserve_floats(const RnnGeometry& g) {
  const Layout L(g);
  return static_cast<size_t>(L.D * L.direction_reserve);
}

size_t rnn_workspace_floats(const RnnGeometry& g) {
  const Layout L(g);
  return static_cast<size_t>(std::max(L.forward_end, L.backward_end));
}

void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, float* y,
                 float* reserve, float* workspace, cudaStream_t stream) {
  check_rnn_call("rnn_forward", g, w, nullptr);
  check_pointers("rnn_forward", x, y);
  GRAFT_ASSERT(workspace, "rnn_forward: no workspace (rnn_workspace_floats floats are needed)");
  forward_impl(DeviceExec{stream}, g, x, lengths, w, y, reserve, workspace);
}

void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, const float* dy,
                  const float* reserve, float* dx, const RnnGradients& dw, float* workspace, cudaStream_t stream) {
  check_rnn_call("rnn_backward", g, w, nullptr);
  check_pointers("rnn_backward", x, dy);
  GRAFT_ASSERT(workspace, "rnn_backward: no workspace (rnn_workspace_floats floats are needed)");
  backward_impl(DeviceExec{stream}, g, x, lengths, w, dy, reserve, dx, dw, workspace);
}

}  // namespace graft::cuda

namespace graft::cuda::host_emulation {

void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, float* y,
                 float* reserve, float* workspace) {
  check_rnn_call("rnn_forward", g, w, lengths);
  forward_impl(HostExec{}, g, x, lengths, w, y, reserve, workspace);
}

void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, const float* dy,
                  const float* reserve, float* dx, const RnnGradients& dw, float* workspace) {
  check_rnn_call("rnn_backward", g, w, lengths);
  backward_impl(HostExec{}, g, x, lengths, w, dy, reserve, dx, dw, workspace);
}

}  // namespace graft::cuda::host_emulation
