// RnnPlan: cuDNN's RNN descriptors and sizes per geometry (kernels/lib/rnn_plan.h).
#include "kernels/lib/rnn_plan.h"

#include <algorithm>
#include <map>
#include <memory>
#include <tuple>

#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::lib {

namespace {

constexpr int64_t kAlign = 64;  // floats: regions start 256-byte aligned
int64_t aligned_floats(size_t bytes) {
  const int64_t floats = static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float));
  return (floats + kAlign - 1) / kAlign * kAlign;
}

using Key = std::tuple<int, int, int, int, int, int, int>;

std::map<Key, std::unique_ptr<RnnPlan>>& plans() {
  thread_local std::map<Key, std::unique_ptr<RnnPlan>> cache;
  return cache;
}

int64_t elements(cudnnTensorDescriptor_t d) {
  cudnnDataType_t type{};
  int nb = 0, dims[8] = {}, strides[8] = {};
  GRAFT_CUDNN_CHECK(cudnnGetTensorNdDescriptor(d, 8, &type, &nb, dims, strides));
  int64_t n = 1;
  for (int i = 0; i < nb; ++i) n *= dims[i];
  return n;
}

}  // namespace

RnnPlan::~RnnPlan() {
  if (rnn) cudnnDestroyRNNDescriptor(rnn);
  if (x) cudnnDestroyRNNDataDescriptor(x);
  if (y) cudnnDestroyRNNDataDescriptor(y);
  if (h) cudnnDestroyTensorDescriptor(h);
}

void set_rnn_lengths(RnnPlan& p, const RnnGeometry& g, const int32_t* host_lengths) {
  std::vector<int> lengths(static_cast<size_t>(g.batch), g.steps);
  if (host_lengths) std::copy(host_lengths, host_lengths + g.batch, lengths.begin());
  float fill = 0.0f;  // what cuDNN writes at the padded steps of y (and dx)
  GRAFT_CUDNN_CHECK(cudnnSetRNNDataDescriptor(p.x, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
                                              g.steps, g.batch, g.input, lengths.data(), &fill));
  GRAFT_CUDNN_CHECK(cudnnSetRNNDataDescriptor(p.y, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
                                              g.steps, g.batch, g.directions() * g.hidden, lengths.data(), &fill));
}

RnnPlan& rnn_plan(LibraryContext& ctx, const RnnGeometry& g, cudaStream_t stream) {
  const bool tf32 = ctx.options().allow_tf32;
  const Key key{static_cast<int>(g.cell), g.batch, g.steps, g.input, g.hidden, g.bidirectional ? 1 : 0, tf32 ? 1 : 0};
  auto& cache = plans();
  if (auto it = cache.find(key); it != cache.end()) return *it->second;

  GRAFT_ASSERT(g.batch > 0 && g.steps > 0 && g.input > 0 && g.hidden > 0, "bad recurrent layer shape: batch ", g.batch,
               ", steps ", g.steps, ", input ", g.input, ", hidden ", g.hidden);
  auto plan = std::make_unique<RnnPlan>();
  RnnPlan& p = *plan;
  GRAFT_CUDNN_CHECK(cudnnCreateRNNDescriptor(&p.rnn));
  GRAFT_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&p.x));
  GRAFT_CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&p.y));
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.h));
  // Exact fp32 is FMA math (no TF32 tensor cores); --tf32 lets cuDNN choose. bf16 contexts
  // keep recurrent layers in fp32 (cuDNN's RNNs have no bf16-operand, fp32-state mode).
  const cudnnMathType_t math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  GRAFT_CUDNN_CHECK(cudnnSetRNNDescriptor_v8(
      p.rnn, CUDNN_RNN_ALGO_STANDARD, g.cell == RnnCell::LSTM ? CUDNN_LSTM : CUDNN_GRU, CUDNN_RNN_DOUBLE_BIAS,
      g.bidirectional ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, CUDNN_DATA_FLOAT,
      CUDNN_DATA_FLOAT, math, g.input, g.hidden, g.hidden, /*numLayers=*/1, /*dropoutDesc=*/nullptr,
      CUDNN_RNN_PADDED_IO_ENABLED));
  const int h_dims[3] = {g.directions(), g.batch, g.hidden};
  const int h_strides[3] = {g.batch * g.hidden, g.hidden, 1};
  GRAFT_CUDNN_CHECK(cudnnSetTensorNdDescriptor(p.h, CUDNN_DATA_FLOAT, 3, h_dims, h_strides));
  set_rnn_lengths(p, g, nullptr);  // sizes depend on the shape, not on the lengths

  cudnnHandle_t handle = ctx.cudnn(stream);
  GRAFT_CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(handle, p.rnn, &p.weight_bytes));
  size_t train_work = 0, infer_work = 0, unused = 0;
  GRAFT_CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(handle, p.rnn, CUDNN_FWD_MODE_TRAINING, p.x, &train_work,
                                              &p.reserve_bytes));
  GRAFT_CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(handle, p.rnn, CUDNN_FWD_MODE_INFERENCE, p.x, &infer_work, &unused));
  p.work_bytes = std::max(train_work, infer_work);

  p.weights_at = 0;
  p.work_at = p.weights_at + aligned_floats(p.weight_bytes);
  p.dx_at = p.work_at + aligned_floats(p.work_bytes);
  p.lengths_at = p.dx_at + aligned_floats(sizeof(float) * static_cast<size_t>(g.input_numel()));
  p.workspace_floats = p.lengths_at + aligned_floats(sizeof(int32_t) * static_cast<size_t>(g.batch));
  return *cache.emplace(key, std::move(plan)).first->second;
}

void locate_blocks(RnnPlan& p, const RnnGeometry& g, cudnnHandle_t handle, void* weight_space) {
  if (!p.blocks.empty()) return;
  cudnnTensorDescriptor_t m = nullptr, b = nullptr;
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m));
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&b));
  std::vector<RnnPlan::Block> blocks;
  try {
    const int G = g.gates();
    const auto* base = static_cast<const char*>(weight_space);
    for (int d = 0; d < g.directions(); ++d)
      // cuDNN's linear layers 0..G-1 multiply the input, G..2G-1 the hidden state, gate by gate
      // in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
      for (int id = 0; id < 2 * G; ++id) {
        void* m_addr = nullptr;
        void* b_addr = nullptr;
        GRAFT_CUDNN_CHECK(cudnnGetRNNWeightParams(handle, p.rnn, d, p.weight_bytes, weight_space, id, m, &m_addr, b,
                                                  &b_addr));
        const bool recurrent = id >= G;
        const int gate = id % G;
        const int64_t m_count = int64_t{g.hidden} * (recurrent ? g.hidden : g.input);
        // Read once (elements() can throw, which must not hide the message below); a missing
        // matrix or bias counts 0.
        const int64_t m_elements = m_addr ? elements(m) : 0, b_elements = b_addr ? elements(b) : 0;
        GRAFT_ASSERT(m_addr && b_addr && m_elements == m_count && b_elements == g.hidden,
                     "cuDNN's weight space does not have PyTorch's per-gate layout (direction ", d, ", linear layer ",
                     id, ": ", m_elements, " matrix and ", b_elements, " bias elements, expected ", m_count, " and ",
                     g.hidden, ")");
        const int64_t m_at = (static_cast<const char*>(m_addr) - base) / static_cast<int64_t>(sizeof(float));
        const int64_t b_at = (static_cast<const char*>(b_addr) - base) / static_cast<int64_t>(sizeof(float));
        blocks.push_back({d, recurrent ? 1 : 0, gate, m_at, m_count});
        blocks.push_back({d, recurrent ? 3 : 2, gate, b_at, g.hidden});
      }
  } catch (...) {
    cudnnDestroyTensorDescriptor(m);
    cudnnDestroyTensorDescriptor(b);
    throw;
  }
  // Both destroyed before either status can throw, so a failure leaks neither.
  const cudnnStatus_t m_destroyed = cudnnDestroyTensorDescriptor(m);
  const cudnnStatus_t b_destroyed = cudnnDestroyTensorDescriptor(b);
  GRAFT_CUDNN_CHECK(m_destroyed);
  GRAFT_CUDNN_CHECK(b_destroyed);
  p.blocks = std::move(blocks);
}

}  // namespace graft::lib
