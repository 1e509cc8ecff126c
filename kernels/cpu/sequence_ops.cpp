// Embedding and sequence pooling on the CPU (kernels/cpu/sequence_ops.h).
#include "kernels/cpu/sequence_ops.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace graft::cpu {

namespace {

// The table row of ids[i], checked: the caller validated the ids, so a bad one here is a bug.
int row_of(float id, int vocab, int64_t i) {
  const int r = static_cast<int>(id);
  GRAFT_ASSERT(r >= 0 && r < vocab && static_cast<float>(r) == id, "embedding: id ", id, " at ", i,
               " is not a whole number in 0..", vocab - 1);
  return r;
}

int length_of(const SequencePoolGeometry& g, const int32_t* lengths, int b) {
  const int len = lengths ? lengths[b] : g.steps;
  GRAFT_ASSERT(len >= 1 && len <= g.steps, "sequence pooling: sequence ", b, " has length ", len, " of ", g.steps,
               " steps");
  return len;
}

}  // namespace

void embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* table,
                       float* y) {
  for (int64_t i = 0; i < count; ++i) {
    const int r = row_of(ids[i], vocab, i);
    float* out = y + i * dim;
    if (r == padding_idx)
      std::fill(out, out + dim, 0.0f);
    else
      std::memcpy(out, table + int64_t{r} * dim, size_t(dim) * sizeof(float));
  }
}

void embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids, const float* dy,
                        float* dtable) {
  std::fill(dtable, dtable + int64_t{vocab} * dim, 0.0f);
  for (int64_t i = 0; i < count; ++i) {
    const int r = row_of(ids[i], vocab, i);
    if (r == padding_idx) continue;
    float* row = dtable + int64_t{r} * dim;
    for (int j = 0; j < dim; ++j) row[j] += dy[i * dim + j];
  }
}

void sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y) {
  const int F = g.features;
  if (g.mode == SequencePoolMode::Flatten) {
    const int64_t row = int64_t{g.steps} * F;
    for (int b = 0; b < g.batch; ++b) {
      const int64_t kept = int64_t{length_of(g, lengths, b)} * F;
      std::copy_n(x + b * row, kept, y + b * row);
      std::fill(y + b * row + kept, y + (b + 1) * row, 0.0f);
    }
    return;
  }
  for (int b = 0; b < g.batch; ++b) {
    const int len = length_of(g, lengths, b);
    const float* seq = x + int64_t{b} * g.steps * F;
    float* out = y + int64_t{b} * F;
    for (int f = 0; f < F; ++f) {
      if (g.mode == SequencePoolMode::Last) {
        out[f] = seq[int64_t{f < g.reverse_from ? len - 1 : 0} * F + f];
      } else {
        double sum = 0;
        for (int t = 0; t < len; ++t) sum += seq[int64_t{t} * F + f];
        out[f] = static_cast<float>(sum / len);
      }
    }
  }
}

void sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy, float* dx) {
  const int F = g.features;
  std::fill(dx, dx + int64_t{g.batch} * g.steps * F, 0.0f);
  if (g.mode == SequencePoolMode::Flatten) {
    const int64_t row = int64_t{g.steps} * F;
    for (int b = 0; b < g.batch; ++b) std::copy_n(dy + b * row, int64_t{length_of(g, lengths, b)} * F, dx + b * row);
    return;
  }
  for (int b = 0; b < g.batch; ++b) {
    const int len = length_of(g, lengths, b);
    float* seq = dx + int64_t{b} * g.steps * F;
    const float* d = dy + int64_t{b} * F;
    for (int f = 0; f < F; ++f) {
      if (g.mode == SequencePoolMode::Last) {
        seq[int64_t{f < g.reverse_from ? len - 1 : 0} * F + f] = d[f];
      } else {
        const float share = d[f] / static_cast<float>(len);
        for (int t = 0; t < len; ++t) seq[int64_t{t} * F + f] = share;
      }
    }
  }
}

}  // namespace graft::cpu
