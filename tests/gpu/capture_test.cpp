// Step-graph capture on the device (CudaOps/LibOps begin_capture/end_capture): what cannot
// be recorded is refused or reported, and the stream is usable after. A pool growth or a
// library workspace growth while recording throws graft::Error saying what grew; ending the
// capture from the handler (as the executor does) returns -1 and leaves capture mode; the
// same call run eagerly next gives the CPU reference's answer. A capture invalidated by an
// illegal call reports the CUDA error at its end. tests/gpu/training_test.cpp holds the
// executor's fallback to eager steps to the same bits.
#include <string>
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/dense.h"
#include "kernels/lib/ops_lib.h"
#include "base/cuda/capture.h"

namespace graft::testing {
namespace {

class CaptureGpu : public GpuTest {
 protected:
  // Dense backward (weights and bias) of fresh inputs through `ops`, against the CPU.
  static void expect_dense_backward_right(Ops& ops, int n, int in, int out) {
    const auto x = random_floats(size_t(n) * in), dy = random_floats(size_t(n) * out);
    std::vector<float> ref_dw(size_t(in) * out), ref_db(static_cast<size_t>(out));
    cpu::dense_backward_weights_reference(n, in, out, x.data(), dy.data(), ref_dw.data(), ref_db.data());
    auto dx = to_device(x), ddy = to_device(dy);
    auto dw = poisoned_device(ref_dw.size()), db = poisoned_device(ref_db.size());
    ops.dense_backward_weights(n, in, out, dx.get(), ddy.get(), dw.get(), db.get());
    ops.synchronize();
    EXPECT_LT(relative_error(dw.download(), ref_dw), kFp32Tolerance) << "dw";
    EXPECT_LT(relative_error(db.download(), ref_db), kFp32Tolerance) << "dbias";
  }

  // One dense backward (weights and bias) of fresh inputs on the device, its CPU answer, and
  // the calls that record it and check what the device wrote.
  struct DenseBackward {
    int n, in, out;
    std::vector<float> x = random_floats(size_t(n) * in), dy = random_floats(size_t(n) * out);
    std::vector<float> ref_dw = std::vector<float>(size_t(in) * out), ref_db = std::vector<float>(size_t(out));
    DeviceArray<float> dx = to_device(x), ddy = to_device(dy);
    DeviceArray<float> dw = poisoned_device(ref_dw.size()), db = poisoned_device(ref_db.size());
    DenseBackward(int n_, int in_, int out_) : n(n_), in(in_), out(out_) {
      cpu::dense_backward_weights_reference(n, in, out, x.data(), dy.data(), ref_dw.data(), ref_db.data());
    }
    int record(Ops& ops) {
      EXPECT_TRUE(ops.begin_capture());
      ops.dense_backward_weights(n, in, out, dx.get(), ddy.get(), dw.get(), db.get());
      return ops.end_capture();
    }
    void expect_right(Ops& ops) {
      ops.synchronize();
      EXPECT_LT(relative_error(dw.download(), ref_dw), kFp32Tolerance) << "dw";
      EXPECT_LT(relative_error(db.download(), ref_db), kFp32Tolerance) << "dbias";
    }
  };

  // Runs `f` inside a capture that must throw; returns the message and what ending the
  // capture from the handler gave.
  template <class F>
  static std::pair<std::string, int> capture_refused(Ops& ops, F&& f) {
    EXPECT_TRUE(ops.begin_capture());
    try {
      f();
    } catch (const Error& e) {
      const int id = ops.end_capture();  // in the handler: abandons, as Executor::forward_backward
      return {e.what(), id};
    }
    ADD_FAILURE() << "nothing was refused under capture";
    return {"", ops.end_capture()};
  }
};

TEST_F(CaptureGpu, PoolGrowthIsRefusedAndTheStreamStaysUsable) {
  cuda::DevicePool dev;
  lib::LibOps ops(dev);
  const size_t mallocs = dev.stats().system_allocations, in_use = dev.stats().bytes_in_use;
  const size_t bytes = size_t(random_int(3, 9)) << 20;
  const auto [why, id] = capture_refused(ops, [&] { PoolBuffer grown(dev, bytes, "capture-test"); });
  EXPECT_EQ(id, -1);
  EXPECT_TRUE(has(why, "pool had to grow") && has(why, "capture-test") && has(why, "recorded")) << why;
  EXPECT_FALSE(cuda::stream_capturing(ops.stream()));
  EXPECT_EQ(dev.stats().system_allocations, mallocs);
  EXPECT_EQ(dev.stats().bytes_in_use, in_use) << "a refused growth holds nothing";
  expect_dense_backward_right(ops, random_int(2, 9), random_int(3, 50), random_int(2, 40));  // may grow the pool
  const size_t before_eager = dev.stats().system_allocations;
  PoolBuffer after(dev, bytes, "capture-test");  // eagerly, the pool grows
  EXPECT_EQ(dev.stats().system_allocations, before_eager + 1);
}

// A bias gradient for a batch larger than any planned needs a longer ones vector: a
// library-context growth, refused under capture before any allocation.
TEST_F(CaptureGpu, WorkspaceGrowthIsRefusedAndTheEagerCallIsRight) {
  cuda::DevicePool dev;
  lib::LibOps ops(dev);
  const int in = random_int(3, 50), out = random_int(2, 40), small = random_int(2, 8);
  expect_dense_backward_right(ops, small, in, out);  // plans it; ones for `small` rows
  const int large = small + random_int(1, 100);
  const auto x = random_floats(size_t(large) * in), dy = random_floats(size_t(large) * out);
  auto dx = to_device(x), ddy = to_device(dy);
  auto dw = poisoned_device(size_t(in) * out), db = poisoned_device(size_t(out));
  const auto [why, id] = capture_refused(
      ops, [&] { ops.dense_backward_weights(large, in, out, dx.get(), ddy.get(), dw.get(), db.get()); });
  EXPECT_EQ(id, -1);
  EXPECT_TRUE(has(why, "ones vector had to grow") && has(why, "recorded")) << why;
  EXPECT_FALSE(cuda::stream_capturing(ops.stream()));
  expect_dense_backward_right(ops, large, in, out);
}

// An illegal call in the recording (a synchronize) invalidates it; the end of the capture
// reports the CUDA error it got instead of a bare -1.
TEST_F(CaptureGpu, AnInvalidatedCaptureReportsItsCudaError) {
  cuda::DevicePool dev;
  lib::LibOps ops(dev);
  const int in = random_int(3, 50), out = random_int(2, 40), n = random_int(2, 8);
  expect_dense_backward_right(ops, n, in, out);
  ASSERT_TRUE(ops.begin_capture());
  (void)cudaStreamSynchronize(ops.stream());
  (void)cudaGetLastError();
  expect_error([&] { ops.end_capture(); }, {"CUDA graph capture of the step failed", "cudaError"});
  EXPECT_FALSE(cuda::stream_capturing(ops.stream()));
  expect_dense_backward_right(ops, n, in, out);
}

// A clean capture still records and replays: the replay gives the eager answer.
TEST_F(CaptureGpu, ACleanCaptureReplaysTheEagerResult) {
  cuda::DevicePool dev;
  lib::LibOps ops(dev);
  const int in = random_int(3, 50), out = random_int(2, 40), n = random_int(2, 8);
  expect_dense_backward_right(ops, n, in, out);  // plans the shape
  DenseBackward step(n, in, out);
  const int id = step.record(ops);
  ASSERT_GE(id, 0);
  ops.replay(id);
  step.expect_right(ops);
}

// A graph holds the library context's blocks: once one is replaced by a larger block (a
// batch larger than the recorded one grows the ones vector, outside any recording), the
// graph is stale: graph_current says so, replay refuses it by name instead of writing into
// freed memory, and a graph recorded again after the growth replays the eager answer.
TEST_F(CaptureGpu, AGraphIsStaleOnceMemoryItRecordedIsReplaced) {
  cuda::DevicePool dev;
  lib::LibOps ops(dev);
  const int in = random_int(3, 50), out = random_int(2, 40), n = random_int(2, 8);
  expect_dense_backward_right(ops, n, in, out);  // plans the shape
  DenseBackward step(n, in, out);
  const int first = step.record(ops);
  ASSERT_GE(first, 0);
  EXPECT_TRUE(ops.graph_current(first));
  expect_dense_backward_right(ops, n + random_int(50, 500), in, out);  // eagerly: the ones vector grows
  EXPECT_FALSE(ops.graph_current(first));
  expect_error([&] { ops.replay(first); }, {"step graph", "replaced", "record the step again"});
  ops.drop_graph(first);
  const int second = step.record(ops);
  ASSERT_GE(second, 0);
  EXPECT_TRUE(ops.graph_current(second));
  ops.replay(second);
  step.expect_right(ops);
}

}  // namespace
}  // namespace graft::testing
