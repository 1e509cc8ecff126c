// The CPU embedding and sequence-pooling kernels through the Ops interface: parity with
// PyTorch (tests/fixtures/golden_rnn.safetensors, tests/golden/make_rnn.py), and on fresh
// random inputs: padding_idx rows, "last" reading step length-1 forward and step 0 reverse,
// "mean" over the first length steps, "flatten" keeping the first length steps, backwards that are the forwards' adjoints and overwrite.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/geometry.h"
#include "kernels/ops.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::random_floats;
using testing::random_int;
using testing::relative_error;

std::vector<float> tensor(const SafetensorsFile& f, const std::string& name) {
  const auto it = f.tensors.find(name);
  if (it == f.tensors.end()) {
    ADD_FAILURE() << "the fixture has no " << name;
    return {};
  }
  return it->second.to_floats();
}

TEST(SequenceKernel, EmbeddingMatchesPyTorchWithPaddingIdx) {
  const auto f = read_safetensors(GRAFT_FIXTURE_DIR "/golden_rnn.safetensors");
  const auto& w = f.tensors.at("embedding.weight");
  const int vocab = int(w.shape[0]), dim = int(w.shape[1]);
  const auto ids = tensor(f, "embedding.ids");
  const auto table = tensor(f, "embedding.weight");
  const int padding_idx = 3;  // make_rnn.py's
  for (Ops* ops : {&cpu_ops(), &cpu_ops(true)}) {
    SCOPED_TRACE(ops->name());
    auto y = testing::poisoned(ids.size() * dim);
    ops->embedding_forward(int64_t(ids.size()), vocab, dim, padding_idx, ids.data(), table.data(), y.data());
    EXPECT_LT(relative_error(y, tensor(f, "embedding.y")), 1e-6);
    const auto dy = tensor(f, "embedding.R");
    auto dtable = testing::poisoned(table.size());
    ops->embedding_backward(int64_t(ids.size()), vocab, dim, padding_idx, ids.data(), dy.data(), dtable.data());
    EXPECT_LT(relative_error(dtable, tensor(f, "embedding.grad.weight")), 1e-6);
  }
}

TEST(SequenceKernel, PoolingMatchesPyTorchOverLengths) {
  const auto f = read_safetensors(GRAFT_FIXTURE_DIR "/golden_rnn.safetensors");
  for (const char* mode : {"last", "mean"}) {
    SCOPED_TRACE(mode);
    const std::string c = std::string("pool_") + mode;
    const auto& xt = f.tensors.at(c + ".x");
    SequencePoolGeometry g;
    g.mode = std::string(mode) == "last" ? SequencePoolMode::Last : SequencePoolMode::Mean;
    g.batch = int(xt.shape[0]);
    g.steps = int(xt.shape[1]);
    g.features = int(xt.shape[2]);
    g.reverse_from = 4;  // make_rnn.py's
    std::vector<int32_t> lengths;
    for (float l : tensor(f, c + ".lengths")) lengths.push_back(int32_t(l));
    const auto x = tensor(f, c + ".x");
    auto y = testing::poisoned(size_t(g.batch) * g.features);
    cpu_ops().sequence_pool_forward(g, lengths.data(), x.data(), y.data());
    EXPECT_LT(relative_error(y, tensor(f, c + ".y")), 1e-6);
    const auto dy = tensor(f, c + ".R");
    auto dx = testing::poisoned(x.size());
    cpu_ops().sequence_pool_backward(g, lengths.data(), dy.data(), dx.data());
    EXPECT_LT(relative_error(dx, tensor(f, c + ".dx")), 1e-6);
  }
}

TEST(SequenceKernel, EmbeddingRowsAndGradientsOnRandomIds) {
  const int vocab = random_int(2, 30), dim = random_int(1, 9), count = random_int(1, 60);
  const int padding_idx = random_int(-1, vocab - 1);  // -1: none
  std::vector<float> ids(count);
  for (auto& id : ids) id = float(random_int(0, vocab - 1));
  const auto table = random_floats(size_t(vocab) * dim);
  auto y = testing::poisoned(size_t(count) * dim);
  cpu_ops().embedding_forward(count, vocab, dim, padding_idx, ids.data(), table.data(), y.data());
  for (int i = 0; i < count; ++i)
    for (int j = 0; j < dim; ++j)
      EXPECT_EQ(y[size_t(i) * dim + j], int(ids[i]) == padding_idx ? 0.0f : table[size_t(ids[i]) * dim + j]);
  // The backward is the forward's adjoint: <dy, E(table)> = <dtable, table>.
  const auto dy = random_floats(y.size());
  auto dtable = testing::poisoned(table.size());
  cpu_ops().embedding_backward(count, vocab, dim, padding_idx, ids.data(), dy.data(), dtable.data());
  EXPECT_NEAR(testing::dot(dtable, table), testing::dot(y, dy), 1e-4 * (1 + std::abs(testing::dot(y, dy))));
  if (padding_idx >= 0) {
    for (int j = 0; j < dim; ++j) EXPECT_EQ(dtable[size_t(padding_idx) * dim + j], 0.0f);
  }
}

TEST(SequenceKernel, PoolingOnRandomLengthsAndItsAdjoint) {
  for (auto mode : {SequencePoolMode::Last, SequencePoolMode::Mean, SequencePoolMode::Flatten}) {
    SequencePoolGeometry g;
    g.mode = mode;
    g.batch = random_int(1, 6);
    g.steps = random_int(1, 9);
    g.features = random_int(1, 8);
    g.reverse_from = random_int(0, g.features);
    std::vector<int32_t> lengths(g.batch);
    for (auto& l : lengths) l = random_int(1, g.steps);
    const auto x = random_floats(size_t(g.batch) * g.steps * g.features);
    const bool flatten = mode == SequencePoolMode::Flatten;
    auto y = testing::poisoned(size_t(g.batch) * g.features * (flatten ? g.steps : 1));
    cpu_ops().sequence_pool_forward(g, lengths.data(), x.data(), y.data());
    for (int b = 0; flatten && b < g.batch; ++b)  // x reshaped, the steps past the length zero
      for (int t = 0; t < g.steps; ++t)
        for (int j = 0; j < g.features; ++j) {
          const size_t at = (size_t(b) * g.steps + t) * g.features + j;
          EXPECT_EQ(y[at], t < lengths[b] ? x[at] : 0.0f) << b << "," << t << "," << j;
        }
    for (int b = 0; !flatten && b < g.batch; ++b)
      for (int j = 0; j < g.features; ++j) {
        const auto at = [&](int t) { return double(x[(size_t(b) * g.steps + t) * g.features + j]); };
        double want = 0;
        if (mode == SequencePoolMode::Last) {
          want = j < g.reverse_from ? at(lengths[b] - 1) : at(0);
        } else {
          for (int t = 0; t < lengths[b]; ++t) want += at(t);
          want /= lengths[b];
        }
        EXPECT_NEAR(y[size_t(b) * g.features + j], want, 1e-6) << b << "," << j;
      }
    const auto dy = random_floats(y.size());
    auto dx = testing::poisoned(x.size());
    cpu_ops().sequence_pool_backward(g, lengths.data(), dy.data(), dx.data());
    EXPECT_NEAR(testing::dot(dx, x), testing::dot(y, dy), 1e-5 * (1 + std::abs(testing::dot(y, dy))));
    for (int b = 0; b < g.batch; ++b)  // past the length nothing was read: zero, not left alone
      for (int t = lengths[b]; t < g.steps; ++t)
        for (int j = 0; j < g.features; ++j) EXPECT_EQ(dx[(size_t(b) * g.steps + t) * g.features + j], 0.0f);
  }
}

}  // namespace
}  // namespace graft
