// CpuOps' sequence ops: embedding, recurrent layers and sequence pooling (kernels/cpu/rnn.h,
// kernels/cpu/sequence.h). Not written yet (issue 17): every call says so.
#include "base/error.h"
#include "kernels/cpu/ops_cpu.h"

namespace graft::cpu {

namespace {
[[noreturn]] void not_yet(const char* op) { fail(op, ": not implemented on the CPU yet (issue 17)"); }
}  // namespace

void CpuOps::embedding_forward(int64_t, int, int, int, const float*, const float*, float*) { not_yet("embedding_forward"); }
void CpuOps::embedding_backward(int64_t, int, int, int, const float*, const float*, float*) { not_yet("embedding_backward"); }
size_t CpuOps::rnn_reserve_floats(const RnnGeometry&) { not_yet("rnn_reserve_floats"); }
size_t CpuOps::rnn_workspace_floats(const RnnGeometry&) { not_yet("rnn_workspace_floats"); }
void CpuOps::rnn_forward(const RnnGeometry&, const float*, const int32_t*, const int32_t*, const RnnWeights&, float*,
                         float*, float*) {
  not_yet("rnn_forward");
}
void CpuOps::rnn_backward(const RnnGeometry&, const float*, const int32_t*, const int32_t*, const RnnWeights&,
                          const float*, const float*, float*, float*, const RnnGradients&, float*) {
  not_yet("rnn_backward");
}
void CpuOps::sequence_pool_forward(const SequencePoolGeometry&, const int32_t*, const float*, float*) {
  not_yet("sequence_pool_forward");
}
void CpuOps::sequence_pool_backward(const SequencePoolGeometry&, const int32_t*, const float*, float*) {
  not_yet("sequence_pool_backward");
}

}  // namespace graft::cpu
