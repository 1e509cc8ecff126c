// CudaOps' sequence ops: embedding and sequence pooling (kernels/cuda/sequence.h) and the
// recurrent layers (kernels/cuda/rnn.h), on the Ops' stream. The kernels read lengths from
// device memory only; the host copy is checked here (1..steps) when the caller has one.
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/rnn.h"
#include "kernels/cuda/sequence.h"

namespace graft::cuda {

void CudaOps::embedding_forward(int64_t count, int vocab, int dim, int padding_idx, const float* ids,
                                const float* table, float* y) {
  cuda::embedding_forward(count, vocab, dim, padding_idx, ids, table, y, stream_);
}
void CudaOps::embedding_backward(int64_t count, int vocab, int dim, int padding_idx, const float* ids,
                                 const float* dy, float* dtable) {
  cuda::embedding_backward(count, vocab, dim, padding_idx, ids, dy, dtable, stream_);
}

size_t CudaOps::rnn_reserve_floats(const RnnGeometry& g) { return cuda::rnn_reserve_floats(g); }
size_t CudaOps::rnn_workspace_floats(const RnnGeometry& g) { return cuda::rnn_workspace_floats(g); }

void CudaOps::rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                          const RnnWeights& w, float* y, float* reserve, float* workspace) {
  check_rnn_call("rnn_forward", g, w, host_lengths);
  cuda::rnn_forward(g, x, lengths, w, y, reserve, workspace, stream_);
}
void CudaOps::rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                           const RnnWeights& w, const float*, const float* dy, float* reserve, float* dx,
                           const RnnGradients& dw, float* workspace) {
  check_rnn_call("rnn_backward", g, w, host_lengths);
  cuda::rnn_backward(g, x, lengths, w, dy, reserve, dx, dw, workspace, stream_);
}

void CudaOps::sequence_pool_forward(const SequencePoolGeometry& g, const int32_t* lengths, const float* x, float* y) {
  cuda::sequence_pool_forward(g, lengths, x, y, stream_);
}
void CudaOps::sequence_pool_backward(const SequencePoolGeometry& g, const int32_t* lengths, const float* dy,
                                     float* dx) {
  cuda::sequence_pool_backward(g, lengths, dy, dx, stream_);
}

}  // namespace graft::cuda
