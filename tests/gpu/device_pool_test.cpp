// The device pool and the device probe.
#include <string>
#include <vector>

#include "gpu_testing.h"
#include "base/error.h"

namespace graft::testing {
namespace {

// Runs everywhere: without a device, the probe says why instead of failing.
TEST(DeviceProbe, ExplainsAbsence) {
  std::string reason;
  const bool ok = cuda::device_available(&reason);
  if (!ok)
    EXPECT_FALSE(reason.empty());
  else
    EXPECT_NO_THROW(cuda::check_device_supported());
  EXPECT_FALSE(cuda::built_architectures().empty());
  std::printf("[graft] %s\n", cuda::device_summary().c_str());
}

class DevicePoolGpu : public GpuTest {};

TEST_F(DevicePoolGpu, NoCudaMallocAfterWarmUp) {
  cuda::DevicePool pool;
  const std::vector<size_t> sizes = {100, 4096, 1 << 20, (1 << 20) + 1, 3 << 20};
  for (size_t s : sizes) pool.release(pool.allocate(s, "workspace"));  // warm-up
  const size_t after_warmup = pool.stats().system_allocations;
  EXPECT_EQ(after_warmup, sizes.size());
  for (int round = 0; round < 100; ++round)
    for (size_t s : sizes) {
      void* p = pool.allocate(s, "workspace");
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
      pool.release(p);
    }
  EXPECT_EQ(pool.stats().system_allocations, after_warmup);
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
}

TEST_F(DevicePoolGpu, StatsByTagAndPeak) {
  cuda::DevicePool pool;
  void* a = pool.allocate(1000, "activations");
  void* b = pool.allocate(5000, "gradients");
  auto s = pool.stats();
  EXPECT_EQ(s.tag("activations"), cuda::DevicePool::size_class(1000));
  EXPECT_EQ(s.tag("gradients"), cuda::DevicePool::size_class(5000));
  EXPECT_EQ(s.bytes_in_use, s.tag("activations") + s.tag("gradients"));
  EXPECT_EQ(s.peak_bytes_in_use, s.bytes_in_use);
  EXPECT_GE(s.bytes_reserved, s.bytes_in_use);
  // The memory is real device memory.
  GRAFT_CUDA_CHECK(cudaMemset(a, 0, 1000));
  pool.release(a);
  pool.release(b);
  s = pool.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_GT(s.peak_bytes_in_use, 0u);
  pool.reset_peak();
  EXPECT_EQ(pool.stats().peak_bytes_in_use, 0u);
  pool.empty_cache();
  EXPECT_EQ(pool.stats().bytes_reserved, 0u);
}

TEST_F(DevicePoolGpu, OutOfMemoryIsAnErrorNotACrash) {
  cuda::DevicePool pool;
  void* keep = pool.allocate(1 << 20, "parameters");
  try {
    pool.allocate(size_t{1} << 50, "activations");  // a petabyte: cudaMalloc must fail
    FAIL() << "expected an out-of-memory error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(std::to_string(size_t{1} << 50)), std::string::npos) << what;
    EXPECT_NE(what.find("try a smaller --batch"), std::string::npos) << what;
    EXPECT_NE(what.find("parameters"), std::string::npos) << what;
  }
  // Still usable afterwards.
  void* p = pool.allocate(4096, "activations");
  EXPECT_NE(p, nullptr);
  GRAFT_CUDA_CHECK(cudaMemset(p, 0, 4096));
  GRAFT_CUDA_CHECK(cudaDeviceSynchronize());
  pool.release(p);
  pool.release(keep);

  cuda::DevicePool capped(2 << 20);
  void* q = capped.allocate(1 << 20, "workspace");
  EXPECT_THROW(capped.allocate(4 << 20, "workspace"), Error);
  capped.release(q);
}

}  // namespace
}  // namespace graft::testing
