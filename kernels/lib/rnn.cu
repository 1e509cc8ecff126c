// LibOps' recurrent layers through cuDNN's RNN API: cudnnRNNForward, cudnnRNNBackwardData_v8,
// cudnnRNNBackwardWeights_v8 on padded batch-major data (docs/kernels-rnn.md). The layer's
// per-direction weights (PyTorch's layout) are copied into cuDNN's weight space, which lives
// in the workspace, before every call that reads them (the workspace is shared with other
// layers between forward and backward), and the weight gradients are copied out of the same
// space after the backward, in one launch each. cuDNN sizes its launches from the host
// lengths: a captured step graph holds the lengths it was recorded with.
#include "kernels/lib/ops_lib.h"

#include <algorithm>

#include "base/cuda/cuda_check.h"
#include "base/error.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/rnn.h"
#include "kernels/cuda/sequence.h"
#include "kernels/lib/rnn_plan.h"

namespace graft::lib {

namespace {

// Up to two directions x (2 gates' matrices + 2 biases) x 4 gates.
constexpr int kMaxCopies = 32;
struct Copies {
  const float* src[kMaxCopies];
  float* dst[kMaxCopies];
  int64_t count[kMaxCopies];
  int n = 0;
};

// blockIdx.y picks the copy; threads stride over its elements.
__global__ void copy_blocks_kernel(Copies c) {
  const int k = static_cast<int>(blockIdx.y);
  const float* src = c.src[k];
  float* dst = c.dst[k];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < c.count[k]; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = src[i];
}

void run_copies(const Copies& c, cudaStream_t stream) {
  if (c.n == 0) return;
  int64_t longest = 1;
  for (int k = 0; k < c.n; ++k) longest = std::max(longest, c.count[k]);
  const dim3 grid(std::min<unsigned>(cuda::detail::grid_for(longest), 1024u), static_cast<unsigned>(c.n));
  copy_blocks_kernel<<<grid, cuda::detail::kThreads, 0, stream>>>(c);
  GRAFT_CUDA_CHECK_LAUNCH();
}

// The start of gate `gate`'s rows in one of PyTorch's tensors (0 weight_ih, 1 weight_hh,
// 2 bias_ih, 3 bias_hh) of direction d.
template <class W>
auto pytorch_block(const W& w, const RnnGeometry& g, int d, int tensor, int gate) {
  const int64_t rows = int64_t{gate} * g.hidden;
  switch (tensor) {
    case 0: return w.w_ih[d] ? w.w_ih[d] + rows * g.input : nullptr;
    case 1: return w.w_hh[d] ? w.w_hh[d] + rows * g.hidden : nullptr;
    case 2: return w.b_ih[d] ? w.b_ih[d] + rows : nullptr;
    default: return w.b_hh[d] ? w.b_hh[d] + rows : nullptr;
  }
}

void copy_weights_in(const RnnPlan& p, const RnnGeometry& g, const RnnWeights& w, float* space, cudaStream_t stream) {
  // Whatever the blocks do not cover (alignment gaps) is zero, as in a freshly made space.
  GRAFT_CUDA_CHECK(cudaMemsetAsync(space, 0, p.weight_bytes, stream));
  Copies c;
  for (const auto& b : p.blocks) {
    GRAFT_ASSERT(c.n < kMaxCopies, "too many weight blocks for one copy launch");
    c.src[c.n] = pytorch_block(w, g, b.dir, b.tensor, b.gate);
    c.dst[c.n] = space + b.offset;
    c.count[c.n] = b.count;
    ++c.n;
  }
  run_copies(c, stream);
}

void copy_gradients_out(const RnnPlan& p, const RnnGeometry& g, const RnnGradients& dw, const float* space,
                        cudaStream_t stream) {
  Copies c;
  for (const auto& b : p.blocks) {
    float* dst = pytorch_block(dw, g, b.dir, b.tensor, b.gate);
    if (!dst) continue;
    c.src[c.n] = space + b.offset;
    c.dst[c.n] = dst;
    c.count[c.n] = b.count;
    ++c.n;
  }
  run_copies(c, stream);
}

__global__ void fill_lengths_kernel(int n, int32_t value, int32_t* out) {
  const int stride = static_cast<int>(gridDim.x * blockDim.x);
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += stride) out[i] = value;
}

// Zeros rows [b, t, :] at t >= length: the contract's padded outputs, whatever cuDNN leaves there.
__global__ void zero_padding_kernel(int batch, int steps, int features, const int32_t* lengths, float* y) {
  const int64_t total = int64_t{batch} * steps * features;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t bt = i / features;
    const int len = cuda::sequence_length(lengths, static_cast<int>(bt / steps), steps);
    if (static_cast<int>(bt % steps) >= len) y[i] = 0.0f;
  }
}

void zero_padding(const RnnGeometry& g, int features, const int32_t* lengths, float* y, cudaStream_t stream) {
  const int64_t total = int64_t{g.batch} * g.steps * features;
  zero_padding_kernel<<<cuda::detail::grid_for(total), cuda::detail::kThreads, 0, stream>>>(g.batch, g.steps, features,
                                                                                            lengths, y);
  GRAFT_CUDA_CHECK_LAUNCH();
}

struct Call {
  RnnPlan* plan;
  cudnnHandle_t handle;
  float* weights;
  void* work;
  const int32_t* dev_lengths;
};

// Everything a call needs before cuDNN runs: the plan with this call's lengths, the weight
// space (located on first use), device lengths (filled with `steps` when the caller has none).
Call prepare(LibraryContext& ctx, const char* op, const RnnGeometry& g, const int32_t* host_lengths,
             const int32_t* lengths, float* workspace, cudaStream_t stream) {
  GRAFT_ASSERT(!lengths == !host_lengths, op, ": the lengths must be given both in device memory and on the host "
               "(cuDNN sizes its launches from the host copy), or neither");
  GRAFT_ASSERT(workspace, op, ": no workspace (rnn_workspace_floats floats are needed)");
  RnnPlan& p = rnn_plan(ctx, g, stream);
  set_rnn_lengths(p, g, host_lengths);
  Call c{&p, ctx.cudnn(stream), workspace + p.weights_at, workspace + p.work_at, lengths};
  locate_blocks(p, g, c.handle, c.weights);
  if (!lengths) {
    auto* filled = reinterpret_cast<int32_t*>(workspace + p.lengths_at);
    fill_lengths_kernel<<<1, 256, 0, stream>>>(g.batch, g.steps, filled);
    GRAFT_CUDA_CHECK_LAUNCH();
    c.dev_lengths = filled;
  }
  return c;
}

}  // namespace

size_t LibOps::rnn_reserve_floats(const RnnGeometry& g) {
  const RnnPlan& p = rnn_plan(*ctx_, g, stream_);
  return (p.reserve_bytes + sizeof(float) - 1) / sizeof(float);
}

size_t LibOps::rnn_workspace_floats(const RnnGeometry& g) {
  return static_cast<size_t>(rnn_plan(*ctx_, g, stream_).workspace_floats);
}

void LibOps::rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                         const RnnWeights& w, float* y, float* reserve, float* workspace) {
  cuda::check_rnn_call("rnn_forward", g, w, host_lengths);
  const Call c = prepare(*ctx_, "rnn_forward", g, host_lengths, lengths, workspace, stream_);
  const RnnPlan& p = *c.plan;
  copy_weights_in(p, g, w, c.weights, stream_);
  GRAFT_CUDNN_CHECK(cudnnRNNForward(c.handle, p.rnn, reserve ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE,
                                    c.dev_lengths, p.x, x, p.y, y, p.h, nullptr, nullptr, p.h, nullptr, nullptr,
                                    p.weight_bytes, c.weights, p.work_bytes, c.work, reserve ? p.reserve_bytes : 0,
                                    reserve));
  if (lengths) zero_padding(g, g.directions() * g.hidden, lengths, y, stream_);
}

void LibOps::rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                          const RnnWeights& w, const float* y, const float* dy, float* reserve, float* dx,
                          const RnnGradients& dw, float* workspace) {
  cuda::check_rnn_call("rnn_backward", g, w, host_lengths);
  bool want_w = false;
  for (int d = 0; d < g.directions(); ++d) want_w = want_w || dw.w_ih[d] || dw.w_hh[d] || dw.b_ih[d] || dw.b_hh[d];
  if (!dx && !want_w) return;
  GRAFT_ASSERT(reserve, "rnn_backward needs the reserve a training forward filled (its forward ran with reserve == "
                        "null, as inference)");
  const Call c = prepare(*ctx_, "rnn_backward", g, host_lengths, lengths, workspace, stream_);
  const RnnPlan& p = *c.plan;
  copy_weights_in(p, g, w, c.weights, stream_);
  // The data gradient runs even when dx is not wanted: it fills the reserve the weight
  // gradient reads.
  float* dx_out = dx ? dx : workspace + p.dx_at;
  GRAFT_CUDNN_CHECK(cudnnRNNBackwardData_v8(c.handle, p.rnn, c.dev_lengths, p.y, y, dy, p.x, dx_out, p.h, nullptr,
                                            nullptr, nullptr, p.h, nullptr, nullptr, nullptr, p.weight_bytes,
                                            c.weights, p.work_bytes, c.work, p.reserve_bytes, reserve));
  if (dx && lengths) zero_padding(g, g.input, lengths, dx, stream_);
  if (!want_w) return;
  // The weights are read; their space now takes the gradients. cuDNN adds into it
  // (CUDNN_WGRAD_MODE_ADD, the mode every version supports), so it starts at zero.
  GRAFT_CUDA_CHECK(cudaMemsetAsync(c.weights, 0, p.weight_bytes, stream_));
  GRAFT_CUDNN_CHECK(cudnnRNNBackwardWeights_v8(c.handle, p.rnn, CUDNN_WGRAD_MODE_ADD, c.dev_lengths, p.x, x, p.h,
                                               nullptr, p.y, y, p.weight_bytes, c.weights, p.work_bytes, c.work,
                                               p.reserve_bytes, reserve));
  copy_gradients_out(p, g, dw, c.weights, stream_);
}

}  // namespace graft::lib
