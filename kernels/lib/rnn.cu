// LibOps' recurrent layers through cuDNN's RNN API (cudnnRNNForward,
// cudnnRNNBackwardData_v8, cudnnRNNBackwardWeights_v8). Not written yet (issue 17).
#include "base/error.h"
#include "kernels/lib/ops_lib.h"

namespace graft::lib {

namespace {
[[noreturn]] void not_yet(const char* op) { fail(op, ": not implemented with cuDNN yet (issue 17)"); }
}  // namespace

size_t LibOps::rnn_reserve_floats(const RnnGeometry&) { not_yet("rnn_reserve_floats"); }
size_t LibOps::rnn_workspace_floats(const RnnGeometry&) { not_yet("rnn_workspace_floats"); }
void LibOps::rnn_forward(const RnnGeometry&, const float*, const int32_t*, const int32_t*, const RnnWeights&, float*,
                         float*, float*) {
  not_yet("rnn_forward");
}
void LibOps::rnn_backward(const RnnGeometry&, const float*, const int32_t*, const int32_t*, const RnnWeights&,
                          const float*, const float*, float*, float*, const RnnGradients&, float*) {
  not_yet("rnn_backward");
}

}  // namespace graft::lib
