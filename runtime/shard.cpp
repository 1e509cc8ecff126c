// Shard: which rows of every global batch a rank reads.
#include "runtime/shard.h"

#include <algorithm>

#include "base/error.h"

namespace graft {

Shard make_shard(int rank, int ranks, int64_t global_batch) {
  if (ranks < 1 || rank < 0 || rank >= ranks) fail("rank ", rank, " of ", ranks, " ranks is not a rank");
  if (ranks > 1 && global_batch < ranks)
    fail("--batch ", global_batch, " is the global batch, split over ", ranks, " ranks: each rank needs at least "
         "one example of it; use --batch ", ranks, " or more, or fewer ranks");
  return Shard{rank, ranks, ranks > 1 ? global_batch : 0};
}

std::pair<int64_t, int64_t> Shard::rows(int64_t n) const {
  if (!active()) return {0, n};
  return {n * rank / ranks, n * (rank + 1) / ranks};
}

std::vector<int64_t> Shard::select(const std::vector<int64_t>& order) const {
  if (!active()) return order;
  std::vector<int64_t> mine;
  const auto n = static_cast<int64_t>(order.size());
  mine.reserve(static_cast<size_t>(n / ranks + batch));
  for (int64_t start = 0; start < n; start += batch) {
    const auto [lo, hi] = rows(std::min(batch, n - start));
    mine.insert(mine.end(), order.begin() + start + lo, order.begin() + start + hi);
  }
  return mine;
}

int64_t Shard::local_position(int64_t global, int64_t epoch_size) const {
  if (!active()) return global;
  global = std::clamp<int64_t>(global, 0, epoch_size);
  const int64_t full = global / batch;
  const auto [lo, hi] = rows(batch);
  int64_t local = full * (hi - lo);
  const int64_t rest = global - full * batch;  // inside a batch: the rows of it this rank has passed
  if (rest > 0) {
    const auto [plo, phi] = rows(std::min(batch, epoch_size - full * batch));
    local += std::clamp<int64_t>(rest - plo, 0, phi - plo);
  }
  return local;
}

int64_t Shard::global_position(int64_t local, int64_t epoch_size) const {
  if (!active()) return local;
  const auto [lo, hi] = rows(batch);
  const int64_t per_batch = hi - lo;  // > 0: make_shard checked the batch
  const int64_t full_batches = epoch_size / batch;
  if (local <= full_batches * per_batch && local % per_batch == 0) return local / per_batch * batch;
  // Inside a batch, or in the short last one: count batches whole, then rows.
  const int64_t k = std::min(local / per_batch, full_batches);
  const int64_t start = k * batch;
  const auto [plo, phi] = rows(std::min(batch, epoch_size - start));
  const int64_t rest = local - k * per_batch;
  if (rest >= phi - plo) return std::min(epoch_size, start + std::min(batch, epoch_size - start));
  return start + plo + rest;
}

}  // namespace graft
