// Embedding and sequence pooling kernels (kernels/cuda/sequence.h): one thread per output
// element, each op a small functor run by a grid-stride kernel on the device or by a loop on
// the host (host_emulation), so the index math is checked without a device. The embedding
// backward is the exception: a block per range of table rows, summing in token order.
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

// The embedding backward without atomics: block (x, y) owns table rows [x R, x R + R) and
// columns [y W, y W + W), one thread per column, each holding its R rows' sums in registers.
// It reads every token id in token order and adds a token's dy element to the sum of its row,
// so each dtable entry is 0 plus its tokens' dy in token order: the CPU reference's order,
// bitwise, on every run. Cost: O(vocab / R * ceil(dim / W) * count) id reads (ids staged in
// shared memory, the tokens of the block's rows compacted in order), O(count * dim) adds.
constexpr int kEmbedRows = 16;      // R: rows per block, a register each per thread
constexpr int kEmbedMaxWidth = 256;  // W <= this: one thread per column of the tile

struct EmbeddingBackward {
  const float* ids;
  const float* dy;
  float* dtable;
  int64_t count;
  int vocab, dim, padding_idx;
  // Threads (columns) per block: the dim rounded up to whole warps, at most kEmbedMaxWidth, so a
  // narrow table leaves no warp idle.
  static int width(int dim) { return std::min(kEmbedMaxWidth, (dim + 31) / 32 * 32); }
  // The slot (row - first_row) of token t's row in the block's range, or -1.
  GRAFT_HD int slot(int64_t t, int64_t first_row) const {
    const int id = table_row(ids, t, vocab, padding_idx);
    return id >= first_row && id < first_row + kEmbedRows ? static_cast<int>(id - first_row) : -1;
  }
  // Where row first_row + r's sum for `column` goes, or null past the table's end.
  GRAFT_HD float* entry(int64_t first_row, int r, int column) const {
    return first_row + r < vocab && column < dim ? dtable + (first_row + r) * dim + column : nullptr;
  }
};

__global__ void __launch_bounds__(kEmbedMaxWidth) embedding_backward_kernel(EmbeddingBackward f) {
  __shared__ int chunk_token[kEmbedMaxWidth];  // this chunk's tokens of the block's rows, in order
  __shared__ int chunk_slot[kEmbedMaxWidth];
  __shared__ int warp_hits[kEmbedMaxWidth / 32];
  const int tid = static_cast<int>(threadIdx.x), width = static_cast<int>(blockDim.x);
  const int warp = tid / 32, lane = tid % 32;
  const int64_t first_row = int64_t{blockIdx.x} * kEmbedRows;
  const int column = static_cast<int>(blockIdx.y) * width + tid;
  const bool owns_column = column < f.dim;
  float acc[kEmbedRows];
#pragma unroll
  for (int r = 0; r < kEmbedRows; ++r) acc[r] = 0.0f;

  for (int64_t base = 0; base < f.count; base += width) {
    // Stable compaction of the chunk's hits: ballot within each warp, warps in order.
    const int s = base + tid < f.count ? f.slot(base + tid, first_row) : -1;
    const unsigned hits = __ballot_sync(0xffffffffu, s >= 0);
    if (lane == 0) warp_hits[warp] = __popc(hits);
    __syncthreads();
    int at = __popc(hits & ((1u << lane) - 1u)), total = 0;
    for (int w = 0; w < width / 32; ++w) {
      if (w < warp) at += warp_hits[w];
      total += warp_hits[w];
    }
    if (s >= 0) {
      chunk_token[at] = tid;
      chunk_slot[at] = s;
    }
    __syncthreads();
    if (owns_column) {
      for (int h = 0; h < total; ++h) {
        const float v = f.dy[(base + chunk_token[h]) * f.dim + column];
        const int hs = chunk_slot[h];
#pragma unroll
        for (int r = 0; r < kEmbedRows; ++r)  // constant indices: acc stays in registers
          if (r == hs) acc[r] += v;
      }
    }
    __syncthreads();  // the next chunk overwrites warp_hits and chunk_*
  }
#pragma unroll
  for (int r = 0; r < kEmbedRows; ++r)
    if (float* e = f.entry(first_row, r, column)) *e = acc[r];  // the padding row and rows without tokens: 0
}

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
  const EmbeddingBackward f{ids, dy, dtable, count, vocab, dim, padding_idx};
  const int width = EmbeddingBackward::width(dim);
  const int64_t column_tiles = (int64_t{dim} + width - 1) / width;
  GRAFT_ASSERT(column_tiles <= 65535, "embedding dim ", dim, " is too wide for the backward's grid");
  const dim3 grid(static_cast<unsigned>((int64_t{vocab} + kEmbedRows - 1) / kEmbedRows),
                  static_cast<unsigned>(column_tiles));
  embedding_backward_kernel<<<grid, width, 0, stream>>>(f);  // writes every entry: no memset
  GRAFT_CUDA_CHECK_LAUNCH();
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
  // The kernel's blocks and threads as loops: each entry summed from 0 in token order.
  const EmbeddingBackward f{ids, dy, dtable, count, vocab, dim, padding_idx};
  for (int64_t first_row = 0; first_row < vocab; first_row += kEmbedRows)
    for (int column = 0; column < dim; ++column) {
      float acc[kEmbedRows] = {};
      for (int64_t t = 0; t < count; ++t)
        if (const int s = f.slot(t, first_row); s >= 0) acc[s] += dy[t * dim + column];
      for (int r = 0; r < kEmbedRows; ++r)
        if (float* e = f.entry(first_row, r, column)) *e = acc[r];
    }
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
