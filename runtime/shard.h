// Data-parallel sharding of batches: with R ranks and a global batch of B, each global batch
// (B consecutive positions of the epoch's order, the last one possibly shorter) is split
// into R contiguous slices, rank r reading rows [b*r/R, b*(r+1)/R) of a batch of b rows. A
// rank's order is therefore a fixed subsequence of the epoch's order: disjoint from the
// other ranks', together exactly the epoch, and a pure function of (seed, epoch), so a
// resumed rank finds its place from the global position alone.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace graft {

struct Shard {
  int rank = 0;
  int ranks = 1;
  int64_t batch = 0;  // the global batch (0 with one rank: no sharding)

  bool active() const { return ranks > 1; }
  // Rows [first, second) of a batch of `rows` that this rank reads.
  std::pair<int64_t, int64_t> rows(int64_t rows) const;
  // The positions of an epoch order of `n` positions this rank reads, in order.
  std::vector<int64_t> select(const std::vector<int64_t>& order) const;
  // This rank's position after `global` positions of the epoch (a batch boundary or the
  // end), and back: the global position at which this rank has read `local` positions
  // (the smallest; exact at batch boundaries).
  int64_t local_position(int64_t global, int64_t epoch_size) const;
  int64_t global_position(int64_t local, int64_t epoch_size) const;
};

// Checks a data-parallel configuration, naming the flag: every rank needs at least one
// row of a full batch (--batch at least the number of ranks).
Shard make_shard(int rank, int ranks, int64_t global_batch);

}  // namespace graft
