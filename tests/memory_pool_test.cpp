// CachingPool, the bookkeeping under HostPool and the CUDA backend's DevicePool: size
// classes, reuse of freed blocks, the statistics (in use, reserved, peak, system
// allocations, per tag) against a model of them kept by the test over a random sequence of
// requests, emptying the cache, freeing everything at the end, and errors. A pool over
// malloc that counts its system calls stands in for cudaMalloc here; HostPool is checked too.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/memory_pool.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::error_of;

// What the system handed out and has not had back; it outlives the pool that uses it.
struct Ledger {
  std::map<void*, size_t> held;  // block -> bytes
  size_t held_bytes = 0;
  size_t limit = 0;  // > 0: refuse a block past this many bytes held
};

// A CachingPool over malloc that records its system calls in a Ledger.
class CountingPool final : public CachingPool {
 public:
  explicit CountingPool(Ledger& ledger) : ledger_(ledger) {}
  ~CountingPool() override { free_all(); }
  Device device() const override { return Device::CPU; }
  void empty_cache() {
    std::lock_guard lock(mutex());
    empty_cache_locked();
  }

 private:
  void* system_allocate(size_t cls, size_t bytes, std::string_view tag) override {
    if (ledger_.limit && ledger_.held_bytes + cls > ledger_.limit)
      fail("out of test memory: asked for ", bytes, " bytes (", std::string(tag), ")");
    void* p = std::aligned_alloc(256, cls);
    ledger_.held[p] = cls;
    ledger_.held_bytes += cls;
    return p;
  }
  void system_free(void* p) override {
    auto it = ledger_.held.find(p);
    ASSERT_NE(it, ledger_.held.end()) << "a block freed twice or never allocated";
    ledger_.held_bytes -= it->second;
    ledger_.held.erase(it);
    std::free(p);
  }
  Ledger& ledger_;
};

TEST(CachingPool, SizeClassesAreGranulesThenPowersOfTwo) {
  for (int trial = 0; trial < 2000; ++trial) {
    const size_t bytes = size_t(testing::random_int(0, 1 << 23));
    const size_t cls = CachingPool::size_class(bytes);
    ASSERT_GE(cls, std::max<size_t>(bytes, 1)) << bytes;
    if (bytes <= (size_t{1} << 20)) {
      EXPECT_EQ(cls % 256, 0u) << bytes;
      EXPECT_LT(cls - std::max<size_t>(bytes, 1), 256u) << bytes;
    } else {
      EXPECT_EQ(cls & (cls - 1), 0u) << bytes << ": not a power of two";
      EXPECT_LT(cls / 2, bytes) << bytes;
    }
  }
}

// The pool's statistics after every call equal a model of them the test keeps itself.
TEST(CachingPool, StatisticsFollowARandomSequenceOfRequests) {
  Ledger ledger;
  CountingPool pool(ledger);
  struct Live {
    size_t cls;
    std::string tag;
  };
  std::map<void*, Live> live;
  std::multiset<size_t> cached;
  size_t in_use = 0, reserved = 0, peak = 0, system = 0;
  std::map<std::string, size_t> by_tag, peak_by_tag;
  const std::vector<std::string> tags{"activations", "gradients", "parameters", "workspace"};
  for (int op = 0; op < 3000; ++op) {
    const bool allocate = live.empty() || testing::random_int(0, 1) == 0;
    if (allocate) {
      // Few distinct sizes, so freed blocks get reused; one in ten past 1 MiB (powers of two).
      const size_t bytes = size_t(testing::random_int(1, 6)) * 1000 + (testing::random_int(0, 9) == 0 ? 3 << 20 : 0);
      const std::string& tag = tags[size_t(testing::random_int(0, 3))];
      void* p = pool.allocate(bytes, tag);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
      ASSERT_EQ(live.count(p), 0u) << "a block handed out twice";
      const size_t cls = CachingPool::size_class(bytes);
      if (auto it = cached.find(cls); it != cached.end()) {
        cached.erase(it);
      } else {
        reserved += cls;
        ++system;
      }
      live[p] = {cls, tag};
      in_use += cls;
      peak = std::max(peak, in_use);
      by_tag[tag] += cls;
      peak_by_tag[tag] = std::max(peak_by_tag[tag], by_tag[tag]);
    } else {
      auto it = std::next(live.begin(), testing::random_int(0, int(live.size()) - 1));
      pool.release(it->first);
      in_use -= it->second.cls;
      by_tag[it->second.tag] -= it->second.cls;
      cached.insert(it->second.cls);
      live.erase(it);
    }
    const PoolStats s = pool.stats();
    ASSERT_EQ(s.bytes_in_use, in_use) << "after call " << op;
    ASSERT_EQ(s.bytes_reserved, reserved) << "after call " << op;
    ASSERT_EQ(s.peak_bytes_in_use, peak) << "after call " << op;
    ASSERT_EQ(s.system_allocations, system) << "after call " << op;
    ASSERT_EQ(s.in_use_by_tag, by_tag) << "after call " << op;
    ASSERT_EQ(s.peak_by_tag, peak_by_tag) << "after call " << op;
    ASSERT_EQ(ledger.held_bytes, reserved) << "the system holds what the pool says it reserved";
  }
  EXPECT_GT(system, 0u);
  EXPECT_LT(system, 1500u) << "freed blocks were not reused";

  // reset_peak: the peak starts again from what is in use now.
  pool.reset_peak();
  EXPECT_EQ(pool.stats().peak_bytes_in_use, in_use);
  EXPECT_EQ(pool.stats().peak_by_tag, by_tag);

  // empty_cache gives every free block back and keeps the ones in use.
  pool.empty_cache();
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.bytes_in_use, in_use);
  EXPECT_EQ(s.bytes_reserved, in_use);
  EXPECT_EQ(ledger.held_bytes, in_use);
  EXPECT_EQ(ledger.held.size(), live.size());
  for (auto& [p, l] : live) pool.release(p);
}

TEST(CachingPool, TheDestructorGivesEveryBlockBack) {
  Ledger ledger;
  {
    CountingPool pool(ledger);
    std::vector<void*> blocks;
    for (int i = 0; i < 40; ++i) blocks.push_back(pool.allocate(size_t(testing::random_int(1, 1 << 16)), "t"));
    for (size_t i = 0; i < blocks.size(); i += 2) pool.release(blocks[i]);  // half cached, half still in use
    EXPECT_EQ(ledger.held.size(), blocks.size());
  }
  EXPECT_TRUE(ledger.held.empty()) << ledger.held.size() << " blocks never given back";
  EXPECT_EQ(ledger.held_bytes, 0u);
}

TEST(CachingPool, ASystemRefusalIsAnErrorAndChangesNothing) {
  Ledger ledger;
  ledger.limit = 8192;
  CountingPool pool(ledger);
  void* a = pool.allocate(4096, "activations");
  const PoolStats before = pool.stats();
  const std::string e = error_of([&] { pool.allocate(8192, "gradients"); });
  EXPECT_TRUE(testing::has(e, "8192 bytes (gradients)")) << e;
  const PoolStats after = pool.stats();
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  EXPECT_EQ(after.bytes_reserved, before.bytes_reserved);
  EXPECT_EQ(after.system_allocations, before.system_allocations);
  EXPECT_EQ(after.tag("gradients"), 0u);
  pool.release(a);
  // A request the cache can serve needs nothing from the system.
  void* b = pool.allocate(4000, "workspace");
  EXPECT_EQ(b, a);
  pool.release(b);
}

TEST(CachingPool, ReleasingAForeignPointerIsAnErrorNamingThePool) {
  HostPool pool;
  int not_ours = 0;
  EXPECT_TRUE(testing::has(error_of([&] { pool.release(&not_ours); }), "this cpu pool does not own"));
  pool.release(nullptr);  // a no-op, as free(nullptr)
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
}

TEST(HostPool, ReusesFreedBlocksAndCountsByTag) {
  HostPool pool;
  const size_t bytes = size_t(testing::random_int(1, 1 << 21));
  void* a = pool.allocate(bytes, "activations");
  std::fill_n(static_cast<char*>(a), bytes, char(1));  // the whole request is usable
  EXPECT_EQ(pool.stats().tag("activations"), HostPool::size_class(bytes));
  pool.release(a);
  void* b = pool.allocate(bytes, "gradients");
  EXPECT_EQ(a, b);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.system_allocations, 1u);
  EXPECT_EQ(s.tag("activations"), 0u);
  EXPECT_EQ(s.tag("gradients"), HostPool::size_class(bytes));
  pool.release(b);
}

}  // namespace
}  // namespace graft
