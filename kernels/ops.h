// Ops: the op-dispatch interface between the layers and the kernels. One implementation per
// backend: CpuOps (kernels/cpu/ops_cpu.h: the fast CPU path, or the reference loops), and the
// CUDA ones (kernels/cuda/ops_cuda.h: hand-written kernels; kernels/lib: cuDNN/cuBLAS, with
// the hand-written kernels for ops the libraries lack). Layers call `ctx.kernels().op(...)`
// and never name a backend.
//
// Pointers are in the Ops' memory space (host for CpuOps, device for the CUDA ones), except
// where a parameter is called `host_*`. Work is issued in order on one stream; only the
// calls marked "synchronizes" wait for it. Same semantics as graft::cpu's functions of the
// same name (see kernels/cpu/*.h); backward calls overwrite their outputs, and a null output
// means "not wanted".
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/common/optimizer_math.h"
#include "kernels/common/warp_math.h"
#include "kernels/cpu/adaptive_pool.h"
#include "kernels/cpu/geometry.h"
#include "base/shape.h"

namespace graft {

using cpu::AdaptivePoolGeometry;

// A recurrent layer's parameters (or their gradients) per direction: [0] forward, [1]
// reverse; layouts in RnnGeometry.
struct RnnWeights {
  const float* w_ih[2] = {nullptr, nullptr};
  const float* w_hh[2] = {nullptr, nullptr};
  const float* b_ih[2] = {nullptr, nullptr};
  const float* b_hh[2] = {nullptr, nullptr};
};
struct RnnGradients {
  float* w_ih[2] = {nullptr, nullptr};
  float* w_hh[2] = {nullptr, nullptr};
  float* b_ih[2] = {nullptr, nullptr};
  float* b_hh[2] = {nullptr, nullptr};
};

// Which implementation the CUDA backend uses: hand-written kernels, cuDNN/cuBLAS, or per
// convolution and dense layer whichever the executor timed faster on its shapes.
enum class KernelChoice { Native, Library, Auto };
const char* kernel_choice_name(KernelChoice k);  // "native", "library", "auto"

class Ops {
 public:
  virtual ~Ops() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;  // "cpu", "cpu reference", "cuda native", "cuda library"
  // True when convolutions and dense layers already run on bf16 operands (the library
  // kernels made for --precision bf16); otherwise the executor wraps them in
  // Bf16EmulationOps for bf16.
  virtual bool computes_bf16() const { return false; }

  // --- convolution (NHWC, OHWI weights) ---
  // Floats of workspace the three conv calls need for this shape (the caller plans it).
  virtual size_t conv2d_workspace_floats(const Conv2dGeometry& g) = 0;
  virtual void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                              float* workspace) = 0;
  virtual void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                    float* workspace) = 0;
  virtual void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                      float* dbias, float* workspace) = 0;

  // --- dense: x [n, in], w [out, in], y [n, out] ---
  virtual void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) = 0;
  virtual void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) = 0;
  virtual void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                                      float* dbias) = 0;

  // --- pooling ---
  virtual void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) = 0;
  virtual void maxpool2d_backward(const Pool2dGeometry& g, const float* x, const float* dy, float* dx) = 0;
  virtual void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) = 0;
  virtual void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) = 0;
  virtual void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) = 0;
  virtual void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) = 0;
  virtual void adaptive_avgpool2d_forward(const AdaptivePoolGeometry& g, const float* x, float* y) = 0;
  virtual void adaptive_avgpool2d_backward(const AdaptivePoolGeometry& g, const float* dy, float* dx) = 0;

  // --- element-wise ---
  virtual void relu_forward(int64_t count, const float* x, float* y) = 0;
  virtual void relu_backward(int64_t count, const float* y, const float* dy, float* dx) = 0;
  // Inverted dropout with a counter-based mask: element i draws random(seed, stream, first + i),
  // `first` the index of x[0] in the whole batch's tensor, so a part of a batch (a data-parallel
  // rank's rows, a chunk) draws the mask the whole batch draws for it.
  virtual void dropout_forward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first, const float* x,
                               float* y) = 0;
  virtual void dropout_backward(int64_t count, float p, uint64_t seed, uint64_t stream, int64_t first,
                                const float* dy, float* dx) = 0;
  // The same, with the stream math::layer_stream(*step, node) of the step count read from the
  // Ops' memory when the work runs (so a recorded step graph draws new masks on each replay).
  virtual void dropout_forward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node,
                                  int64_t first, const float* x, float* y) = 0;
  virtual void dropout_backward_at(int64_t count, float p, uint64_t seed, const int64_t* step, int node,
                                   int64_t first, const float* dy, float* dx) = 0;
  virtual void add(int64_t count, const float* a, const float* b, float* y) = 0;  // y may alias a
  virtual void scale(int64_t count, float alpha, float* x) = 0;
  virtual void copy(int64_t count, const float* x, float* y) = 0;
  virtual void fill(int64_t count, float value, float* x) = 0;
  // y[i] = x[i] rounded to the nearest bf16 (ties to even, as PyTorch), kept as a float; y
  // may alias x. What a bf16 store and load does: --precision bf16's operands.
  virtual void round_to_bf16(int64_t count, const float* x, float* y) = 0;

  // --- batch norm (channels last, `scratch` = 4 * c doubles; see kernels/cpu/batchnorm.h) ---
  // num_batches_tracked (nullable): one float, incremented by 1.
  virtual void batchnorm_forward_batch(int64_t rows, int c, float eps, float momentum, const float* x,
                                       const float* gamma, const float* beta, float* y, float* running_mean,
                                       float* running_var, float* num_batches_tracked, double* scratch) = 0;
  virtual void batchnorm_forward_running(int64_t rows, int c, float eps, const float* x, const float* gamma,
                                         const float* beta, const float* running_mean, const float* running_var,
                                         float* y, double* scratch) = 0;
  virtual void batchnorm_backward_batch(int64_t rows, int c, float eps, const float* x, const float* dy,
                                        const float* gamma, float* dx, float* dgamma, float* dbeta,
                                        double* scratch) = 0;
  virtual void batchnorm_backward_running(int64_t rows, int c, float eps, const float* x, const float* dy,
                                          const float* gamma, const float* running_mean, const float* running_var,
                                          float* dx, float* dgamma, float* dbeta, double* scratch) = 0;

  // --- sequences (kernels/cpu/rnn.h, kernels/cpu/sequence.h): batch-first [batch, steps, features] ---
  // Per-sequence lengths: `lengths` [batch] int32 in the Ops' memory and `host_lengths` the
  // same values on the host (cuDNN's data descriptors need them there); both null = every
  // sequence has all `steps` steps. 1 <= length <= steps. Outputs at steps t >= length are 0.
  //
  // Embedding: ids [count] hold whole-number token ids as floats (exact below 2^24; the
  // caller has checked 0 <= id < vocab), table [vocab, dim], y [count, dim]. Rows of
  // padding_idx (-1: none) are zero in y and get no gradient. The backward overwrites dtable.
  virtual void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids,
                                 const float* table, float* y) = 0;
  virtual void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids,
                                  const float* dy, float* dtable) = 0;
  // Recurrent layers (RnnGeometry): weights and gradients per direction (index 1: reverse).
  // Floats a forward keeps for its backward (`reserve`; a forward with reserve == null is
  // inference and keeps nothing), and scratch either call needs (`workspace`).
  virtual size_t rnn_reserve_floats(const RnnGeometry& g) = 0;
  virtual size_t rnn_workspace_floats(const RnnGeometry& g) = 0;
  virtual void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                           const RnnWeights& w, float* y, float* reserve, float* workspace) = 0;
  // dx null: not wanted (the layer below needs no gradient); dw's pointers null: not wanted
  // (a frozen layer). `reserve` is the forward's (a library may write to it on the way).
  virtual void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths,
                            const int32_t* lengths, const RnnWeights& w, const float* y, const float* dy,
                            float* reserve, float* dx, const RnnGradients& dw, float* workspace) = 0;
  // Sequence pooling (SequencePoolGeometry); the backward overwrites all of dx.
  virtual void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x,
                                     float* y) = 0;
  virtual void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy,
                                      float* dx) = 0;

  // --- input augmentation (kernels/cpu/augment.h): images [n, h, w, 3] uint8 at the input
  // size and one transform each, warped, flipped and normalized into out [n, h, w, 3] ---
  virtual void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                             const math::WarpNorm& norm, float* out) = 0;

  // --- losses: loss_sum and correct are accumulators in the Ops' memory ---
  virtual void softmax_cross_entropy(int n, int classes, const float* logits, const int32_t* labels,
                                     float smoothing, float grad_scale, float* dlogits, double* loss_sum,
                                     double* correct) = 0;
  virtual void mse(int64_t count, const float* pred, const float* target, float grad_scale, float* dpred,
                   double* loss_sum) = 0;
  // targets[n, classes] = one-hot of labels.
  virtual void one_hot(int n, int classes, const int32_t* labels, float* targets) = 0;
  // dst[i] += src[i], i < count.
  virtual void add_doubles(int count, const double* src, double* dst) = 0;

  // --- optimizer steps over flat arrays; the scalars are the host's, copied in stream order ---
  virtual void sgd_step(int64_t count, float* params, const float* grads, float* momentum_buf,
                        const math::SgdHyper& h, const math::StepScalars& s) = 0;
  virtual void adam_step(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                         const math::AdamHyper& h, const math::StepScalars& s) = 0;
  // The same with the scalars in the Ops' memory, read when the kernel runs (step graphs).
  virtual void sgd_step_at(int64_t count, float* params, const float* grads, float* momentum_buf,
                           const math::SgdHyper& h, const math::StepScalars* s) = 0;
  virtual void adam_step_at(int64_t count, float* params, const float* grads, float* exp_avg, float* exp_avg_sq,
                            const math::AdamHyper& h, const math::StepScalars* s) = 0;

  // --- memory ---
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;    // in stream order
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;  // synchronizes
  virtual void synchronize() = 0;
  // Host fences for reusing host memory an upload reads: fence(slot) records a point in the
  // work's order, wait_fence(slot) blocks until the work before the last fence(slot) is done
  // (at once when there was none). On the CPU both do nothing.
  virtual void fence(int slot) {}
  virtual void wait_fence(int slot) {}
  // True when any of x[0..count) is NaN or infinite (synchronizes).
  virtual bool any_nonfinite(int64_t count, const float* x) = 0;
  // In stream order, without waiting: when *first_tag < 0 and *loss or any of x[0..count)
  // is NaN or infinite, *first_tag = tag (the first bad step of many, read later).
  virtual void record_nonfinite(const double* loss, int64_t count, const float* x, int64_t tag,
                                int64_t* first_tag) = 0;

  // --- step graphs (CUDA graphs) ---
  // begin_capture() starts recording the work issued after it instead of running it (false:
  // this backend cannot, as the CPU); end_capture() ends it and returns a graph id; a failed
  // recording throws graft::Error with the CUDA error, except when called from a handler of
  // an exception (abandoning the recording), where it returns -1. Either way nothing ran and
  // the stream is usable again. replay(id) runs the recorded work again, in stream order.
  // graph_current(id) is false once memory the graph recorded was replaced (a workspace grew
  // for a shape first seen after it): such a graph must not be replayed; drop_graph(id) frees
  // it, and the step is recorded again.
  virtual bool begin_capture() { return false; }
  virtual int end_capture() { return -1; }
  virtual void replay(int graph) {}
  virtual bool graph_current(int graph) const { return graph >= 0; }
  virtual void drop_graph(int graph) {}

  // --- timing (graft bench) ---
  // mark() records a point in the work's order and returns its id; elapsed_ms(a, b) waits
  // for b and gives the time between the two (CUDA events on a device; here, the host clock
  // after synchronize()). clear_marks() forgets every mark; ids start again at 0.
  virtual int mark();
  virtual double elapsed_ms(int a, int b);
  virtual void clear_marks();

 private:
  std::vector<std::chrono::steady_clock::time_point> host_marks_;
};

// The CPU implementations, shared: the fast path, or the reference loops.
Ops& cpu_ops(bool reference = false);

}  // namespace graft
