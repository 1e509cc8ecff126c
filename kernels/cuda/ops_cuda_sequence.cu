// CudaOps' sequence ops: embedding, recurrent layers and sequence pooling (kernels/cuda/rnn.h,
// kernels/cuda/sequence.h). Not written yet (issue 17): every call says so.
#include "base/error.h"
#include "kernels/cuda/ops_cuda.h"

namespace graft::cuda {

namespace {
[[noreturn]] void not_yet(const char* op) { fail(op, ": not implemented in the native CUDA kernels yet (issue 17)"); }
}  // namespace

void CudaOps::embedding_forward(int64_t, int, int, int, const float*, const float*, float*) { not_yet("embedding_forward"); }
void CudaOps::embedding_backward(int64_t, int, int, int, const float*, const float*, float*) { not_yet("embedding_backward"); }
size_t CudaOps::rnn_reserve_floats(const RnnGeometry&) { not_yet("rnn_reserve_floats"); }
size_t CudaOps::rnn_workspace_floats(const RnnGeometry&) { not_yet("rnn_workspace_floats"); }
void CudaOps::rnn_forward(const RnnGeometry&, const float*, const int32_t*, const int32_t*, const RnnWeights&, float*,
                         float*, float*) {
  not_yet("rnn_forward");
}
void CudaOps::rnn_backward(const RnnGeometry&, const float*, const int32_t*, const int32_t*, const RnnWeights&,
                          const float*, const float*, float*, float*, const RnnGradients&, float*) {
  not_yet("rnn_backward");
}
void CudaOps::sequence_pool_forward(const SequencePoolGeometry&, const int32_t*, const float*, float*) {
  not_yet("sequence_pool_forward");
}
void CudaOps::sequence_pool_backward(const SequencePoolGeometry&, const int32_t*, const float*, float*) {
  not_yet("sequence_pool_backward");
}

}  // namespace graft::cuda
