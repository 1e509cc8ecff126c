// What LibOps' recurrent layers plan once per geometry for cuDNN's RNN API (kernels/lib/rnn.cu):
// the RNN descriptor (LSTM or GRU, double bias, one layer, linear input, fp32 data and math,
// padded batch-major I/O, no dropout), the hidden-state descriptor, the two data descriptors
// (reset per call from the host lengths), the weight space, work space and reserve sizes, and
// where each of PyTorch's per-gate blocks lives in cuDNN's weight space.
//
// Plans are cached per thread (a data descriptor is rewritten by every call, so two threads
// must not share one) and per math mode; descriptors and sizes do not depend on the handle.
#pragma once
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/lib/context.h"
#include "kernels/ops.h"

namespace graft::lib {

struct RnnPlan {
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnRNNDataDescriptor_t x = nullptr, y = nullptr;
  cudnnTensorDescriptor_t h = nullptr;
  size_t weight_bytes = 0, work_bytes = 0, reserve_bytes = 0;

  // One of PyTorch's tensors' gate blocks: direction, which tensor (0 weight_ih, 1 weight_hh,
  // 2 bias_ih, 3 bias_hh), gate, and its place in the weight space (floats from the start).
  struct Block {
    int dir, tensor, gate;
    int64_t offset, count;
  };
  std::vector<Block> blocks;  // found on the first call that has a weight space (locate_blocks)

  // Floats of the LibOps workspace, in order: the weight space (also the gradients' weight
  // space in the backward, after the data gradient has read the weights), cuDNN's work
  // space, a dx for backwards that do not want one, and device lengths for calls without.
  int64_t weights_at = 0, work_at = 0, dx_at = 0, lengths_at = 0, workspace_floats = 0;

  RnnPlan() = default;
  RnnPlan(const RnnPlan&) = delete;
  RnnPlan& operator=(const RnnPlan&) = delete;
  ~RnnPlan();
};

// The plan for this geometry under the context's options (made on first use, with the
// context's cuDNN handle on `stream`).
RnnPlan& rnn_plan(LibraryContext& ctx, const RnnGeometry& g, cudaStream_t stream);

// Describes this call's sequences to cuDNN: host_lengths (null: every sequence has all steps).
void set_rnn_lengths(RnnPlan& p, const RnnGeometry& g, const int32_t* host_lengths);

// Fills p.blocks from cuDNN's own answer for a weight space at `weight_space`, checking every
// block's size against PyTorch's layout.
void locate_blocks(RnnPlan& p, const RnnGeometry& g, cudnnHandle_t handle, void* weight_space);

}  // namespace graft::lib
