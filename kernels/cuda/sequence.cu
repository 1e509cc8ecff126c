// Embedding and sequence pooling kernels (kernels/cuda/sequence.h): one thread per output
// element, each op a small functor run by a grid-stride kernel on the device or by a loop on
// the host (host_emulation), so the index math is checked without a device.
#include <algorithm>

#include "base/error.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/sequence.h"

namespace graft::cuda {

namespace {

template <class F>
__global__ void each_kernel(int64_t n, F f) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) f(i);
}

template <class F>
void run(int64_t n, const F& f, cudaStream_t stream) {
  if (n <= 0) return;
  each_kernel<F><<<detail::grid_for(n), detail::kThreads, 0, stream>>>(n, f);
  GRAFT_CUDA_CHECK_LAUNCH();
}

template <class F>
void run_on_host(int64_t n, const F& f) {
  for (int64_t i = 0; i < n; ++i) f(i);
}

// The table row of token `row`, or -1 for padding (and for an id outside the table, which the
// caller has ruled out; it must not index memory either way).
GRAFT_HD int table_row(const float* ids, int64_t row, int vocab, int padding_idx) {
  const float v = ids[row];
  if (!(v >= 0.0f) || v >= static_cast<float>(vocab)) return -1;
  const int id = static_cast<int>(v);
  return id == padding_idx ? -1 : id;
}

struct EmbeddingForward {
  const float* ids;
  const float* table;
  float* y;
  int vocab, dim, padding_idx;
  GRAFT_HD void operator()(int64_t i) const {
    const int64_t row = i / dim;
    const int id = table_row(ids, row, vocab, padding_idx);
    y[i] = id < 0 ? 0.0f : table[int64_t{id} * dim + i % dim];
  }
};

struct EmbeddingBackward {
  const float* ids;
  const float* dy;
  float* dtable;
  int vocab, dim, padding_idx;
  GRAFT_HD void operator()(int64_t i) const {
    const int id = table_row(ids, i / dim, vocab, padding_idx);
    if (id < 0) return;
    float* dst = dtable + int64_t{id} * dim + i % dim;
#if defined(__CUDA_ARCH__)
    atomicAdd(dst, dy[i]);
#else
    *dst += dy[i];
#endif
  }
};

struct ZeroFloats {
  float* p;
  GRAFT_HD void operator()(int64_t i) const { p[i] = 0.0f; }
};

// The step "last" pooling takes for feature f: the forward half ends at len-1, the reverse
// half at step 0.
GRAFT_HD int last_step(const SequencePoolGeometry& g, int len, int f) { return f < g.reverse_from ? len - 1 : 0; }

struct PoolForward {
  SequencePoolGeometry g;
  const int32_t* lengths;
  const float* x;
  float* y;
  GRAFT_HD void operator()(int64_t i) const {
    if (g.mode == SequencePoolMode::Flatten) {  // y is x's shape: step t of sequence b kept while t < len
      const int64_t bt = i / g.features;
      const int b = static_cast<int>(bt / g.steps);
      y[i] = bt % g.steps < sequence_length(lengths, b, g.steps) ? x[i] : 0.0f;
      return;
    }
    const int f = static_cast<int>(i % g.features);
    const int b = static_cast<int>(i / g.features);
    const int len = sequence_length(lengths, b, g.steps);
    const float* xb = x + int64_t{b} * g.steps * g.features + f;
    if (len <= 0) {
      y[i] = 0.0f;
      return;
    }
    if (g.mode == SequencePoolMode::Last) {
      y[i] = xb[int64_t{last_step(g, len, f)} * g.features];
      return;
    }
    float sum = 0.0f;
    for (int t = 0; t < len; ++t) sum += xb[int64_t{t} * g.features];
    y[i] = sum / static_cast<float>(len);
  }
};

struct PoolBackward {
  SequencePoolGeometry g;
  const int32_t* lengths;
  const float* dy;
  float* dx;
  GRAFT_HD void operator()(int64_t i) const {
    const int f = static_cast<int>(i % g.features);
    const int64_t bt = i / g.features;
    const int t = static_cast<int>(bt % g.steps);
    const int b = static_cast<int>(bt / g.steps);
    const int len = sequence_length(lengths, b, g.steps);
    const float d = dy[int64_t{b} * g.features + f];
    if (t >= len) {
      dx[i] = 0.0f;
    } else if (g.mode == SequencePoolMode::Flatten) {
      dx[i] = dy[i];
    } else if (g.mode == SequencePoolMode::Last) {
      dx[i] = t == last_step(g, len, f) ? d : 0.0f;
    } else {
      dx[i] = d / static_cast<float>(len);
    }
  }
};

void check_embedding(int64_t count, int vocab, int dim, int padding_idx) {
  GRAFT_ASSERT(count >= 0 && vocab > 0 && dim > 0, "bad embedding shape: ", count, " tokens, vocab ", vocab, ", dim ",
               dim);
  GRAFT_ASSERT(padding_idx >= -1 && padding_idx < vocab, "embedding padding_idx ", padding_idx,
               " is outside the table of ", vocab, " rows (-1: none)");
}

void check_pool(const SequencePoolGeometry& g) {
  GRAFT_ASSERT(g.batch >= 0 && g.steps > 0 && g.features > 0, "bad sequence pooling shape: batch ", g.batch,
               ", steps ", g.steps, ", features ", g.features);
  GRAFT_ASSERT(g.reverse_from >= 0 && g.reverse_from <= g.features, "sequence pooling reverse_from ", g.reverse_from,
               " is outside 0..", g.features);
}

int64_t pool_outputs(const SequencePoolGeometry& g) {
  return int64_t{g.batch} * g.features * (g.mode == SequencePoolMode::Flatten ? g.steps : 1);
}
int64_t pool_inputs(const SequencePoolGeometry& g) { return int64_t{g.batch} * g.steps * g.features; }

}  // namespace

void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                       float* y, cudaStream_t stream) {
  check_embedding(count, vocab, dim, padding_idx);
  run(count * dim, EmbeddingForward{ids, table, y, vocab, dim, padding_idx}, stream);
}

void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                        float* dtable, cudaStream_t stream) {
  check_embedding(count, vocab, dim, padding_idx);
  GRAFT_CUDA_CHECK(cudaMemsetAsync(dtable, 0, sizeof(float) * static_cast<size_t>(vocab) * dim, stream));
  run(count * dim, EmbeddingBackward{ids, dy, dtable, vocab, dim, padding_idx}, stream);
}

void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y,
                           cudaStream_t stream) {
  check_pool(g);
  run(pool_outputs(g), PoolForward{g, lengths, x, y}, stream);
}

void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy, float* dx,
                            cudaStream_t stream) {
  check_pool(g);
  run(pool_inputs(g), PoolBackward{g, lengths, dy, dx}, stream);
}

}  // namespace graft::cuda

namespace graft::cuda::host_emulation {

void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                       float* y) {
  check_embedding(count, vocab, dim, padding_idx);
  run_on_host(count * dim, EmbeddingForward{ids, table, y, vocab, dim, padding_idx});
}

void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                        float* dtable) {
  check_embedding(count, vocab, dim, padding_idx);
  run_on_host(int64_t{vocab} * dim, ZeroFloats{dtable});
  run_on_host(count * dim, EmbeddingBackward{ids, dy, dtable, vocab, dim, padding_idx});
}

void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y) {
  check_pool(g);
  run_on_host(pool_outputs(g), PoolForward{g, lengths, x, y});
}

void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy, float* dx) {
  check_pool(g);
  run_on_host(pool_inputs(g), PoolBackward{g, lengths, dy, dx});
}

}  // namespace graft::cuda::host_emulation
