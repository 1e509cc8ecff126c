// Stream capture (CUDA graphs) and what cannot be recorded in it. A graph replays the
// pointers and kernels it recorded; memory that grows while recording (a new block, a
// freed and replaced workspace) would be baked into the graph or freed under it, and a
// synchronous copy or cudaMalloc is illegal while the stream records. Such a growth throws
// graft::Error instead, before any CUDA call; the capture stays open, and ending it (the
// executor does, then runs the step eagerly) leaves the stream usable.
#pragma once
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>

#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::cuda {

// Whether `stream` is recording (an invalidated capture still counts: it must be ended).
inline bool stream_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  GRAFT_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

// Throws when `stream` records: `what` grew (by `bytes`) where a graph cannot follow.
inline void refuse_growth_under_capture(cudaStream_t stream, const char* what, size_t bytes) {
  if (stream_capturing(stream))
    fail(what, " had to grow (", bytes, " bytes) while a CUDA graph of the step was being recorded; a recorded "
         "graph cannot allocate or replace memory. The eager step before the capture plans every shape: this "
         "shape was first seen under capture");
}

// Memory a recorded graph may hold was replaced by a larger block outside any recording (a
// library workspace grown for a shape first seen later, as a short last batch): graphs
// recorded before it would replay into freed memory. Counted process-wide; CudaOps keeps the
// count with each graph and never replays a stale one (the executor records the step again).
inline std::atomic<uint64_t>& replaced_memory_count() {
  static std::atomic<uint64_t> count{0};
  return count;
}
inline void note_replaced_memory() { replaced_memory_count().fetch_add(1, std::memory_order_relaxed); }

}  // namespace graft::cuda
