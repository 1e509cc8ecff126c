// Embedding (with and without a padding index, repeated ids) and last-step, mean and flatten sequence
// pooling (full and variable lengths, with and without a reverse half) on the device, through
// CudaOps and LibOps (which keeps CudaOps' kernels), against the CPU reference on fresh random
// inputs; outputs start as NaN. The same kernels' host emulation runs without a device
// (NativeKernelEmulation.*). Tolerance: fp32's 1e-5 relative (kFp32Tolerance) for the
// forwards and pooling; the embedding backward sums a repeated id's rows in token order, the
// CPU reference's, so its dtable must equal the CPU's bitwise, run after run.
#include <algorithm>
#include <cstring>
#include <iomanip>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gpu_testing.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/sequence.h"
#include "kernels/lib/ops_lib.h"

namespace graft::testing {
namespace {

struct EmbeddingProblem {
  int64_t count;
  int vocab, dim, padding_idx;
  std::vector<float> ids, table, dy, y, dtable;  // y and dtable: the reference's
};

std::string describe(const EmbeddingProblem& p) {
  return "embedding count=" + std::to_string(p.count) + " vocab=" + std::to_string(p.vocab) +
         " dim=" + std::to_string(p.dim) + " padding_idx=" + std::to_string(p.padding_idx);
}

// Fewer rows than tokens, so ids repeat (the backward sums them), and the padding row is
// among the ids when there is one.
EmbeddingProblem make_embedding(int64_t count, int vocab, int dim, int padding_idx) {
  EmbeddingProblem p{count, vocab, dim, padding_idx, {}, {}, {}, {}, {}};
  for (int64_t i = 0; i < count; ++i) p.ids.push_back(static_cast<float>(random_int(0, vocab - 1)));
  if (padding_idx >= 0) p.ids[0] = static_cast<float>(padding_idx);
  p.table = random_floats(size_t(vocab) * dim);
  p.dy = random_floats(size_t(count) * dim);
  p.y.assign(size_t(count) * dim, 0.0f);
  p.dtable.assign(p.table.size(), 0.0f);
  Ops& cpu = cpu_ops(true);
  cpu.embedding_forward(count, vocab, dim, padding_idx, p.ids.data(), p.table.data(), p.y.data());
  cpu.embedding_backward(count, vocab, dim, padding_idx, p.ids.data(), p.dy.data(), p.dtable.data());
  return p;
}

std::vector<EmbeddingProblem> embedding_problems() {
  return {make_embedding(1, 1, 1, -1), make_embedding(50, 7, 33, 0), make_embedding(300, 41, 65, -1),
          make_embedding(random_int(100, 999), random_int(2, 300), random_int(1, 130), random_int(-1, 1))};
}

// Many repeats of few rows (hundreds to thousands of tokens per row, the padding row among
// them), a dim over one block's 256 columns with a partial last tile, a table whose last
// block of 16 rows is partial, and more rows than tokens (rows without any: 0).
std::vector<EmbeddingProblem> repeated_id_problems() {
  return {make_embedding(20000, 5, 300, 2), make_embedding(3001, 37, 33, 36), make_embedding(500, 1000, 3, 0),
          make_embedding(random_int(1000, 9999), random_int(2, 40), random_int(1, 600), random_int(-1, 1))};
}

struct PoolProblem {
  SequencePoolGeometry g;
  std::vector<int32_t> lengths;  // empty: full length
  std::vector<float> x, dy, y, dx;  // y and dx: the reference's
  const int32_t* host_lengths() const { return lengths.empty() ? nullptr : lengths.data(); }
};

std::string describe(const PoolProblem& p) {
  const char* mode = p.g.mode == SequencePoolMode::Last ? "last" : p.g.mode == SequencePoolMode::Mean ? "mean" : "flatten";
  return std::string(mode) + " pooling batch=" +
         std::to_string(p.g.batch) + " steps=" + std::to_string(p.g.steps) + " features=" +
         std::to_string(p.g.features) + " reverse_from=" + std::to_string(p.g.reverse_from) +
         (p.lengths.empty() ? " full lengths" : " variable lengths");
}

PoolProblem make_pool(SequencePoolMode mode, int batch, int steps, int features, bool reverse_half, bool lengths) {
  PoolProblem p;
  p.g.mode = mode;
  p.g.batch = batch;
  p.g.steps = steps;
  p.g.features = features;
  p.g.reverse_from = reverse_half ? features / 2 : features;
  if (lengths) {
    for (int b = 0; b < batch; ++b) p.lengths.push_back(random_int(1, steps));
    p.lengths[0] = 1;
  }
  p.x = random_floats(size_t(batch) * steps * features);
  p.dy = random_floats(size_t(batch) * features * (mode == SequencePoolMode::Flatten ? steps : 1));
  p.y.assign(p.dy.size(), 0.0f);
  p.dx.assign(p.x.size(), 0.0f);
  Ops& cpu = cpu_ops(true);
  cpu.sequence_pool_forward(p.g, p.host_lengths(), p.x.data(), p.y.data());
  cpu.sequence_pool_backward(p.g, p.host_lengths(), p.dy.data(), p.dx.data());
  return p;
}

std::vector<PoolProblem> pool_problems() {
  std::vector<PoolProblem> out;
  for (auto mode : {SequencePoolMode::Last, SequencePoolMode::Mean, SequencePoolMode::Flatten})
    for (bool reverse_half : {false, true})
      for (bool lengths : {false, true}) {
        out.push_back(make_pool(mode, 1, 1, 2, reverse_half, lengths));
        out.push_back(make_pool(mode, 37, 29, 66, reverse_half, lengths));
      }
  return out;
}

class SequenceGpu : public GpuTest {
 protected:
  std::unique_ptr<Ops> make_ops(Impl impl) {
    if (impl == Impl::Native) return std::make_unique<cuda::CudaOps>(pool());
    return std::make_unique<lib::LibOps>(pool());
  }

  void embedding(Impl impl) {
    auto ops = make_ops(impl);
    for (const auto& p : embedding_problems()) {
      SCOPED_TRACE(describe(p) + " " + name(impl));
      auto ids = to_device(p.ids), table = to_device(p.table), dy = to_device(p.dy);
      auto y = poisoned_device(p.y.size()), dtable = poisoned_device(p.dtable.size());
      ops->embedding_forward(p.count, p.vocab, p.dim, p.padding_idx, ids.get(), table.get(), y.get());
      ops->embedding_backward(p.count, p.vocab, p.dim, p.padding_idx, ids.get(), dy.get(), dtable.get());
      ops->synchronize();
      EXPECT_LT(relative_error(y.download(), p.y), kFp32Tolerance) << "y";
      const auto got = dtable.download();
      EXPECT_EQ(got, p.dtable) << "dtable: " << first_difference(got, p.dtable);
    }
  }

  // The backward twice on the same inputs: bitwise the same table gradient both times, and
  // bitwise the CPU reference's (what --deterministic resume relies on).
  void embedding_backward_is_deterministic(Impl impl) {
    auto ops = make_ops(impl);
    for (const auto& p : repeated_id_problems()) {
      SCOPED_TRACE(describe(p) + " " + name(impl));
      auto ids = to_device(p.ids), dy = to_device(p.dy);
      std::vector<float> runs[2];
      for (auto& out : runs) {
        auto dtable = poisoned_device(p.dtable.size());
        ops->embedding_backward(p.count, p.vocab, p.dim, p.padding_idx, ids.get(), dy.get(), dtable.get());
        ops->synchronize();
        out = dtable.download();
      }
      EXPECT_EQ(runs[0], runs[1]) << "two runs differ: " << first_difference(runs[0], runs[1]);
      EXPECT_EQ(runs[0], p.dtable) << "differs from the CPU reference: " << first_difference(runs[0], p.dtable);
    }
  }

  void pooling(Impl impl) {
    auto ops = make_ops(impl);
    for (const auto& p : pool_problems()) {
      SCOPED_TRACE(describe(p) + " " + name(impl));
      auto x = to_device(p.x), dy = to_device(p.dy);
      DeviceArray<int32_t> lengths;
      if (!p.lengths.empty()) lengths = to_device(p.lengths);
      auto y = poisoned_device(p.y.size()), dx = poisoned_device(p.dx.size());
      ops->sequence_pool_forward(p.g, lengths.get(), x.get(), y.get());
      ops->sequence_pool_backward(p.g, lengths.get(), dy.get(), dx.get());
      ops->synchronize();
      EXPECT_LT(relative_error(y.download(), p.y), kFp32Tolerance) << "y";
      EXPECT_LT(relative_error(dx.download(), p.dx), kFp32Tolerance) << "dx";
    }
  }
};

TEST_F(SequenceGpu, NativeEmbedding) { embedding(Impl::Native); }
TEST_F(SequenceGpu, LibraryEmbedding) { embedding(Impl::Library); }
TEST_F(SequenceGpu, NativeEmbeddingBackwardIsDeterministic) { embedding_backward_is_deterministic(Impl::Native); }
TEST_F(SequenceGpu, LibraryEmbeddingBackwardIsDeterministic) { embedding_backward_is_deterministic(Impl::Library); }
TEST_F(SequenceGpu, NativePooling) { pooling(Impl::Native); }
TEST_F(SequenceGpu, LibraryPooling) { pooling(Impl::Library); }

// ---- no device needed: the same kernels on the host ----

TEST(NativeKernelEmulation, EmbeddingAgainstTheCpuReference) {
  for (const auto& p : embedding_problems()) {
    SCOPED_TRACE(describe(p));
    auto y = poisoned(p.y.size()), dtable = poisoned(p.dtable.size());
    cuda::host_emulation::embedding_forward(p.count, p.vocab, p.dim, p.padding_idx, p.ids.data(), p.table.data(),
                                            y.data());
    cuda::host_emulation::embedding_backward(p.count, p.vocab, p.dim, p.padding_idx, p.ids.data(), p.dy.data(),
                                             dtable.data());
    EXPECT_LT(relative_error(y, p.y), kFp32Tolerance) << "y";
    EXPECT_EQ(dtable, p.dtable) << "dtable: " << first_difference(dtable, p.dtable);
  }
}

// The kernel's order on the host: with many repeats and padding ids, bitwise the CPU's.
TEST(NativeKernelEmulation, EmbeddingBackwardWithRepeatedIdsIsTheCpuReferenceBitwise) {
  for (const auto& p : repeated_id_problems()) {
    SCOPED_TRACE(describe(p));
    auto dtable = poisoned(p.dtable.size());
    cuda::host_emulation::embedding_backward(p.count, p.vocab, p.dim, p.padding_idx, p.ids.data(), p.dy.data(),
                                             dtable.data());
    EXPECT_EQ(dtable, p.dtable) << first_difference(dtable, p.dtable);
    if (p.padding_idx >= 0) {  // the padding row gets no gradient
      const auto row = dtable.begin() + int64_t{p.padding_idx} * p.dim;
      EXPECT_TRUE(std::all_of(row, row + p.dim, [](float v) { return v == 0.0f; })) << "padding row";
    }
  }
}

TEST(NativeKernelEmulation, SequencePoolingAgainstTheCpuReference) {
  for (const auto& p : pool_problems()) {
    SCOPED_TRACE(describe(p));
    auto y = poisoned(p.y.size()), dx = poisoned(p.dx.size());
    cuda::host_emulation::sequence_pool_forward(p.g, p.host_lengths(), p.x.data(), y.data());
    cuda::host_emulation::sequence_pool_backward(p.g, p.host_lengths(), p.dy.data(), dx.data());
    EXPECT_LT(relative_error(y, p.y), kFp32Tolerance) << "y";
    EXPECT_LT(relative_error(dx, p.dx), kFp32Tolerance) << "dx";
  }
}

TEST(NativeKernelEmulation, EmbeddingPaddingIndexOutsideTheTableIsNamed) {
  const std::vector<float> ids = {0.0f, 1.0f}, table = random_floats(6);
  std::vector<float> y(6);
  expect_error([&] { cuda::host_emulation::embedding_forward(2, 2, 3, 2, ids.data(), table.data(), y.data()); },
               {"padding_idx 2", "table of 2 rows"});
}

}  // namespace
}  // namespace graft::testing
