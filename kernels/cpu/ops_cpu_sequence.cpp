// CpuOps' sequence ops: embedding, recurrent layers and sequence pooling, forwarded to
// kernels/cpu/recurrent.h and kernels/cpu/sequence_ops.h. On the CPU the host lengths and
// the Ops-memory lengths are the same array.
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/recurrent.h"
#include "kernels/cpu/sequence_ops.h"

namespace graft::cpu {

void CpuOps::embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids,
                               const float* table, float* y) {
  cpu::embedding_forward(count, vocab, dim, padding_idx, ids, table, y);
}
void CpuOps::embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids,
                                const float* dy, float* dtable) {
  cpu::embedding_backward(count, vocab, dim, padding_idx, ids, dy, dtable);
}
size_t CpuOps::rnn_reserve_floats(const RnnGeometry& g) { return cpu::rnn_reserve_floats(g); }
size_t CpuOps::rnn_workspace_floats(const RnnGeometry& g) { return cpu::rnn_workspace_floats(g); }
void CpuOps::rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                         const RnnWeights& w, float* y, float* reserve, float* workspace) {
  cpu::rnn_forward(g, x, host_lengths ? host_lengths : lengths, w, y, reserve, workspace);
}
void CpuOps::rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                          const RnnWeights& w, const float*, const float* dy, float* reserve, float* dx,
                          const RnnGradients& dw, float* workspace) {
  cpu::rnn_backward(g, x, host_lengths ? host_lengths : lengths, w, dy, reserve, dx, dw, workspace);
}
void CpuOps::sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y) {
  cpu::sequence_pool_forward(g, lengths, x, y);
}
void CpuOps::sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy,
                                    float* dx) {
  cpu::sequence_pool_backward(g, lengths, dy, dx);
}

}  // namespace graft::cpu
