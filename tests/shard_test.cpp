// Data-parallel sharding (runtime/shard.h): every rank reads a disjoint slice of each global
// batch, together exactly the batch and in its order; positions map between a rank's order
// and the epoch's; the sources read their rank's rows. Fresh random sizes every run.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "runtime/batch_source.h"
#include "runtime/image_folder.h"
#include "runtime/shard.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::random_int;

std::vector<int64_t> random_order(int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), testing::rng());
  return order;
}

TEST(Shard, RanksSplitEveryGlobalBatchDisjointlyAndInOrder) {
  for (int trial = 0; trial < 200; ++trial) {
    const int ranks = random_int(1, 7);
    const int64_t batch = random_int(ranks, 40);
    const int64_t n = random_int(0, 300);
    const auto order = random_order(n);
    std::vector<std::vector<int64_t>> shards;
    for (int r = 0; r < ranks; ++r) shards.push_back(make_shard(r, ranks, batch).select(order));
    // Walk the global batches: each is the concatenation of the ranks' next slices.
    std::vector<size_t> at(static_cast<size_t>(ranks), 0);
    for (int64_t start = 0; start < n; start += batch) {
      const int64_t rows = std::min(batch, n - start);
      std::vector<int64_t> joined;
      for (int r = 0; r < ranks; ++r) {
        const auto [lo, hi] = make_shard(r, ranks, batch).rows(rows);
        ASSERT_LE(lo, hi);
        for (int64_t i = lo; i < hi; ++i) joined.push_back(shards[size_t(r)].at(at[size_t(r)]++));
        if (rows == batch) {
          EXPECT_GE(hi - lo, 1) << "every rank has a row of a full batch";
        }
      }
      ASSERT_EQ(joined, std::vector<int64_t>(order.begin() + start, order.begin() + start + rows))
          << "ranks " << ranks << " batch " << batch << " n " << n << " at " << start;
    }
    for (int r = 0; r < ranks; ++r) EXPECT_EQ(at[size_t(r)], shards[size_t(r)].size()) << "rank " << r << " read more";
  }
}

TEST(Shard, PositionsMapBetweenARanksOrderAndTheEpochsAtBatchBoundaries) {
  for (int trial = 0; trial < 200; ++trial) {
    const int ranks = random_int(1, 6);
    const int64_t batch = random_int(ranks, 33);
    const int64_t n = random_int(1, 250);
    for (int r = 0; r < ranks; ++r) {
      const Shard s = make_shard(r, ranks, batch);
      const auto mine = s.select(random_order(n));
      for (int64_t g = 0; g <= n; g += batch) {
        const int64_t local = s.local_position(g, n);
        const auto [lo, hi] = s.rows(batch);
        if (g % batch == 0) {
          EXPECT_EQ(local, g / batch * (hi - lo));
        }
        EXPECT_EQ(s.global_position(local, n), g) << "rank " << r << "/" << ranks << " batch " << batch << " n " << n;
      }
      // The end of the epoch: everything this rank reads.
      EXPECT_EQ(s.local_position(n, n), int64_t(mine.size()));
    }
  }
}

TEST(Shard, ABatchSmallerThanTheRanksIsRefusedNamingTheFlag) {
  try {
    make_shard(0, 4, 3);
    FAIL() << "accepted --batch 3 over 4 ranks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("4 ranks"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_shard(2, 2, 8), Error);
}

// Reads a whole epoch of `src` in batches of `max`: labels, and the first pixel of each example.
std::vector<std::pair<int32_t, float>> read_epoch(BatchSource& src, int64_t max, int64_t epoch, int64_t skip = 0) {
  src.start_epoch(7, epoch, true, false, skip);
  const auto per = static_cast<size_t>(src.sample_shape().numel());
  std::vector<float> images(per * static_cast<size_t>(max));
  std::vector<int32_t> labels(static_cast<size_t>(max));
  std::vector<std::pair<int32_t, float>> got;
  while (int64_t n = src.next_batch(max, images.data(), labels.data()))
    for (int64_t i = 0; i < n; ++i) got.emplace_back(labels[size_t(i)], images[size_t(i) * per]);
  return got;
}

TEST(Shard, InMemorySourcesReadTheirRanksRowsOfEachGlobalBatch) {
  const int64_t n = random_int(20, 90);
  Dataset d;
  d.images = HostTensor(Shape{n, 2, 2, 1}, testing::random_floats(size_t(n) * 4));
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(int32_t(i % 5));
  d.class_names = {"a", "b", "c", "d", "e"};
  d.origin = "random";
  const int ranks = random_int(2, 4);
  const int64_t batch = random_int(ranks, 16);
  InMemorySource whole(d);
  const auto all = read_epoch(whole, batch, 3);
  std::vector<std::vector<std::pair<int32_t, float>>> parts;
  for (int r = 0; r < ranks; ++r) {
    InMemorySource src(d);
    src.set_shard(make_shard(r, ranks, batch));
    parts.push_back(read_epoch(src, batch, 3));
    // A resumed rank starts at its own position of a global batch boundary.
    const int64_t k = random_int(0, int(n / batch));
    const auto resumed = read_epoch(src, batch, 3, src.shard().local_position(k * batch, n));
    ASSERT_LE(resumed.size(), parts.back().size());
    EXPECT_TRUE(std::equal(resumed.begin(), resumed.end(), parts.back().end() - std::ptrdiff_t(resumed.size())));
  }
  std::vector<size_t> at(size_t(ranks), 0);
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t rows = std::min(batch, n - start);
    for (int r = 0; r < ranks; ++r) {
      const auto [lo, hi] = make_shard(r, ranks, batch).rows(rows);
      for (int64_t i = lo; i < hi; ++i) ASSERT_EQ(parts[size_t(r)].at(at[size_t(r)]++), all.at(size_t(start + i)));
    }
  }
}

TEST(Shard, ImageFolderSourcesReadTheirRanksRowsOfEachGlobalBatch) {
  testing::TempDir dir;
  const std::vector<std::string> classes = {"a", "b", "c"};
  testing::write_image_folder(dir.path, classes, random_int(3, 6), 4, 9);
  ImageFolderOptions o;
  o.height = o.width = 6;
  o.threads = random_int(0, 3);
  ImageFolderSource whole(dir.path.string(), o);
  const int64_t n = whole.size();
  const int ranks = 2;
  const int64_t batch = random_int(2, 5);
  const auto all = read_epoch(whole, batch, 1);
  for (int r = 0; r < ranks; ++r) {
    ImageFolderSource src(dir.path.string(), o);
    src.set_shard(make_shard(r, ranks, batch));
    const auto mine = read_epoch(src, batch, 1);
    std::vector<std::pair<int32_t, float>> expected;
    for (int64_t start = 0; start < n; start += batch) {
      const auto [lo, hi] = make_shard(r, ranks, batch).rows(std::min(batch, n - start));
      for (int64_t i = lo; i < hi; ++i) expected.push_back(all.at(size_t(start + i)));
    }
    EXPECT_EQ(mine, expected) << "rank " << r;
  }
}

}  // namespace
}  // namespace graft
