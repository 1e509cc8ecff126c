// LSTM and GRU layers on the CPU (kernels/cpu/recurrent.h).
#include "kernels/cpu/recurrent.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "kernels/cpu/gemm.h"

namespace graft::cpu {

namespace {

float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

bool is_lstm(const RnnGeometry& g) { return g.cell == RnnCell::LSTM; }
// Floats of one reserve entry (one direction, example and step).
int64_t entry_floats(const RnnGeometry& g) { return int64_t{g.hidden} * (is_lstm(g) ? 6 : 5); }
int length_of(const RnnGeometry& g, const int32_t* lengths, int b) { return lengths ? lengths[b] : g.steps; }
// The time index direction d visits at its s-th step of a sequence of length len.
int time_at(int d, int s, int len) { return d == 0 ? s : len - 1 - s; }

// The workspace, carved: the same for forward and backward.
struct Work {
  float* gx;     // [batch * steps, gates * hidden]: input projection (forward) / its gradient (backward)
  float* gh;     // [batch * steps, gates * hidden]: the recurrent product's gradient (backward)
  float* hprev;  // [batch * steps, hidden]: the state each step started from (backward)
  float* step;   // [batch, gates * hidden]: one step's recurrent product / its gradient
  float* h;      // [batch, hidden] each: the states (forward), their gradients (backward)
  float* c;
  float* dh;
  float* dc;
};

Work carve(const RnnGeometry& g, float* w) {
  const size_t bt = size_t(g.batch) * size_t(g.steps), gh = size_t(g.gates()) * size_t(g.hidden);
  const size_t bh = size_t(g.batch) * size_t(g.hidden);
  Work k{};
  k.gx = w;
  k.gh = k.gx + bt * gh;
  k.hprev = k.gh + bt * gh;
  k.step = k.hprev + bt * size_t(g.hidden);
  k.h = k.step + size_t(g.batch) * gh;
  k.c = k.h + bh;
  k.dh = k.c + bh;
  k.dc = k.dh + bh;
  return k;
}

}  // namespace

size_t rnn_reserve_floats(const RnnGeometry& g) {
  return size_t(g.directions()) * size_t(g.batch) * size_t(g.steps) * size_t(entry_floats(g));
}

size_t rnn_workspace_floats(const RnnGeometry& g) {
  const size_t bt = size_t(g.batch) * size_t(g.steps), gh = size_t(g.gates()) * size_t(g.hidden);
  const size_t bh = size_t(g.batch) * size_t(g.hidden);
  return 2 * bt * gh + bt * size_t(g.hidden) + size_t(g.batch) * gh + 4 * bh;
}

void check_rnn_geometry(const char* op, const RnnGeometry& g, const int32_t* lengths) {
  if (g.batch < 1 || g.steps < 1 || g.input < 1 || g.hidden < 1)
    fail(op, ": a recurrent layer needs positive sizes, got batch ", g.batch, ", steps ", g.steps, ", input ", g.input,
         ", hidden ", g.hidden);
  if (!lengths) return;
  for (int b = 0; b < g.batch; ++b)
    if (lengths[b] < 1 || lengths[b] > g.steps)
      fail(op, ": sequence ", b, " has length ", lengths[b], "; lengths must be 1..", g.steps, " (the steps)");
}

void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, float* y,
                 float* reserve, float* workspace) {
  check_rnn_geometry("rnn_forward", g, lengths);
  const int B = g.batch, T = g.steps, H = g.hidden, GH = g.gates() * g.hidden, D = g.directions();
  const int64_t E = entry_floats(g);
  Work k = carve(g, workspace);
  std::fill(y, y + g.output_numel(), 0.0f);
  for (int d = 0; d < D; ++d) {
    GRAFT_ASSERT(w.w_ih[d] && w.w_hh[d] && w.b_ih[d] && w.b_hh[d], "rnn_forward: direction ", d, " has no weights");
    sgemm(false, true, B * T, GH, g.input, 1.0f, x, g.input, w.w_ih[d], g.input, 0.0f, k.gx, GH);
    std::fill(k.h, k.h + size_t(B) * H, 0.0f);
    std::fill(k.c, k.c + size_t(B) * H, 0.0f);
    for (int s = 0; s < T; ++s) {
      sgemm(false, true, B, GH, H, 1.0f, k.h, H, w.w_hh[d], H, 0.0f, k.step, GH);
      for (int b = 0; b < B; ++b) {
        const int len = length_of(g, lengths, b);
        if (s >= len) continue;
        const int t = time_at(d, s, len);
        const float* xp = k.gx + (size_t(b) * T + t) * GH;
        const float* hp = k.step + size_t(b) * GH;
        float* h = k.h + size_t(b) * H;
        float* out = y + (size_t(b) * T + t) * size_t(D) * H + size_t(d) * H;
        float* r = reserve ? reserve + ((size_t(d) * B + b) * T + s) * E : nullptr;
        for (int j = 0; j < H; ++j) {
          if (is_lstm(g)) {
            float* c = k.c + size_t(b) * H;
            auto pre = [&](int q) { return xp[q * H + j] + w.b_ih[d][q * H + j] + hp[q * H + j] + w.b_hh[d][q * H + j]; };
            const float i = sigmoid(pre(0)), f = sigmoid(pre(1)), gg = std::tanh(pre(2)), o = sigmoid(pre(3));
            c[j] = f * c[j] + i * gg;
            h[j] = o * std::tanh(c[j]);
            if (r) {
              r[j] = i, r[H + j] = f, r[2 * H + j] = gg, r[3 * H + j] = o;
              r[4 * H + j] = c[j], r[5 * H + j] = h[j];
            }
          } else {
            const float hn = hp[2 * H + j] + w.b_hh[d][2 * H + j];
            const float rr = sigmoid(xp[j] + w.b_ih[d][j] + hp[j] + w.b_hh[d][j]);
            const float z = sigmoid(xp[H + j] + w.b_ih[d][H + j] + hp[H + j] + w.b_hh[d][H + j]);
            const float n = std::tanh(xp[2 * H + j] + w.b_ih[d][2 * H + j] + rr * hn);
            h[j] = (1.0f - z) * n + z * h[j];
            if (r) {
              r[j] = rr, r[H + j] = z, r[2 * H + j] = n;
              r[3 * H + j] = hn, r[4 * H + j] = h[j];
            }
          }
          out[j] = h[j];
        }
      }
    }
  }
}

void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* lengths, const RnnWeights& w, const float* dy,
                  const float* reserve, float* dx, const RnnGradients& dw, float* workspace) {
  check_rnn_geometry("rnn_backward", g, lengths);
  GRAFT_ASSERT(reserve, "rnn_backward without the forward's reserve");
  const int B = g.batch, T = g.steps, H = g.hidden, GH = g.gates() * g.hidden, D = g.directions();
  const int64_t E = entry_floats(g);
  const bool lstm = is_lstm(g);
  Work k = carve(g, workspace);
  const size_t bt = size_t(B) * T;
  for (int d = 0; d < D; ++d) {
    // Gate gradients per (example, time): gx feeds W_ih, b_ih and dx; gh feeds W_hh, b_hh and
    // the previous step's state (they differ for GRU's n gate, whose recurrent part r scales).
    float* gx = k.gx;
    float* gh = lstm ? k.gx : k.gh;
    std::fill(gx, gx + bt * GH, 0.0f);
    if (!lstm) std::fill(gh, gh + bt * GH, 0.0f);
    std::fill(k.hprev, k.hprev + bt * H, 0.0f);
    std::fill(k.dh, k.dh + size_t(B) * H, 0.0f);  // from the step after, through the recurrence
    std::fill(k.dc, k.dc + size_t(B) * H, 0.0f);
    for (int s = T - 1; s >= 0; --s) {
      std::fill(k.step, k.step + size_t(B) * GH, 0.0f);
      for (int b = 0; b < B; ++b) {
        const int len = length_of(g, lengths, b);
        float* dh_next = k.dh + size_t(b) * H;
        if (s >= len) continue;
        const int t = time_at(d, s, len);
        const float* r = reserve + ((size_t(d) * B + b) * T + s) * E;
        const float* prev = s > 0 ? r - E : nullptr;  // the entry of the step before
        const float* dout = dy + (size_t(b) * T + t) * size_t(D) * H + size_t(d) * H;
        float* gxr = gx + (size_t(b) * T + t) * GH;
        float* ghr = gh + (size_t(b) * T + t) * GH;
        float* hp = k.hprev + (size_t(b) * T + t) * H;
        float* st = k.step + size_t(b) * GH;
        for (int j = 0; j < H; ++j) {
          const float dh = dout[j] + dh_next[j];
          if (lstm) {
            float* dc_next = k.dc + size_t(b) * H;
            const float i = r[j], f = r[H + j], gg = r[2 * H + j], o = r[3 * H + j], c = r[4 * H + j];
            const float c_prev = prev ? prev[4 * H + j] : 0.0f;
            const float tc = std::tanh(c);
            const float dc = dh * o * (1.0f - tc * tc) + dc_next[j];
            gxr[j] = dc * gg * i * (1.0f - i);
            gxr[H + j] = dc * c_prev * f * (1.0f - f);
            gxr[2 * H + j] = dc * i * (1.0f - gg * gg);
            gxr[3 * H + j] = dh * tc * o * (1.0f - o);
            dc_next[j] = dc * f;
            hp[j] = prev ? prev[5 * H + j] : 0.0f;
            dh_next[j] = 0.0f;  // set again below from the recurrent product
          } else {
            const float rr = r[j], z = r[H + j], n = r[2 * H + j], hn = r[3 * H + j];
            const float h_prev = prev ? prev[4 * H + j] : 0.0f;
            const float dn = dh * (1.0f - z) * (1.0f - n * n);
            const float dz = dh * (h_prev - n) * z * (1.0f - z);
            const float dr = dn * hn * rr * (1.0f - rr);
            gxr[j] = dr, gxr[H + j] = dz, gxr[2 * H + j] = dn;
            ghr[j] = dr, ghr[H + j] = dz, ghr[2 * H + j] = dn * rr;
            hp[j] = h_prev;
            dh_next[j] = dh * z;  // the direct path; the recurrent product adds to it below
          }
        }
        std::memcpy(st, ghr, size_t(GH) * sizeof(float));
      }
      // Rows whose sequence did not run at s hold zeros in `step` and in dh (the state they
      // pass back is the zero initial state).
      for (int b = 0; b < B; ++b)
        if (s >= length_of(g, lengths, b)) std::fill(k.dh + size_t(b) * H, k.dh + size_t(b + 1) * H, 0.0f);
      sgemm(false, false, B, H, GH, 1.0f, k.step, GH, w.w_hh[d], H, 1.0f, k.dh, H);
    }
    if (dw.w_ih[d]) sgemm(true, false, GH, g.input, B * T, 1.0f, gx, GH, x, g.input, 0.0f, dw.w_ih[d], g.input);
    if (dw.w_hh[d]) sgemm(true, false, GH, H, B * T, 1.0f, gh, GH, k.hprev, H, 0.0f, dw.w_hh[d], H);
    for (int q = 0; q < GH; ++q) {
      double sx = 0, sh = 0;
      for (size_t row = 0; row < bt; ++row) {
        sx += gx[row * GH + q];
        sh += gh[row * GH + q];
      }
      if (dw.b_ih[d]) dw.b_ih[d][q] = float(sx);
      if (dw.b_hh[d]) dw.b_hh[d][q] = float(sh);
    }
    if (dx) sgemm(false, false, B * T, g.input, GH, 1.0f, gx, GH, w.w_ih[d], g.input, d == 0 ? 0.0f : 1.0f, dx, g.input);
  }
}

}  // namespace graft::cpu
