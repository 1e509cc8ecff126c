#include "kernels/lib/ops_lib.h"

#include "kernels/lib/conv.h"
#include "kernels/lib/dense.h"
#include "kernels/lib/pool.h"

namespace graft::lib {

LibOps::LibOps(MemoryPool& pool, LibraryOptions options)
    : CudaOps(pool), ctx_(std::make_unique<LibraryContext>(pool, options)) {}

// cuDNN's workspace is the context's (reserved when a shape is planned), not the plan's.
size_t LibOps::conv2d_workspace_floats(const Conv2dGeometry&) { return 0; }

void LibOps::conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                            float*) {
  lib::conv2d_forward(*ctx_, g, x, w, bias, y, stream_);
}
void LibOps::conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx, float*) {
  lib::conv2d_backward_data(*ctx_, g, dy, w, dx, stream_);
}
void LibOps::conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                    float* dbias, float*) {
  lib::conv2d_backward_filter(*ctx_, g, x, dy, dw, dbias, stream_);
}

void LibOps::dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) {
  lib::dense_forward(*ctx_, n, in, out, x, w, bias, y, stream_);
}
void LibOps::dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) {
  lib::dense_backward_data(*ctx_, n, in, out, dy, w, dx, stream_);
}
void LibOps::dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                                    float* dbias) {
  lib::dense_backward_weights(*ctx_, n, in, out, x, dy, dw, dbias, stream_);
}

void LibOps::maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  lib::maxpool2d_forward(*ctx_, g, x, y, stream_);
}
void LibOps::avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  lib::avgpool2d_forward(*ctx_, g, x, y, stream_);
}
void LibOps::avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) {
  lib::avgpool2d_backward(*ctx_, g, dy, dx, stream_);
}
void LibOps::global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) {
  lib::global_avgpool_forward(*ctx_, n, h, w, c, x, y, stream_);
}
void LibOps::global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) {
  lib::global_avgpool_backward(*ctx_, n, h, w, c, dy, dx, stream_);
}

}  // namespace graft::lib
