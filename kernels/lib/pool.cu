#include "kernels/lib/pool.h"

#include <memory>

#include "kernels/lib/plans.cuh"
#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::lib {

namespace {

enum Mode { kMax = 0, kAvg = 1 };

PoolPlan& get_plan(LibraryContext& ctx, const Pool2dGeometry& g, Mode mode) {
  // The key's first field folds the mode into n's sign-free slot: (mode, n, ...) via n * 2 + mode.
  const LibraryContext::PoolKey key{g.n * 2 + mode, g.h, g.w, g.c, g.kh, g.kw, g.stride, g.pad, 0};
  if (auto it = ctx.pool_plans.find(key); it != ctx.pool_plans.end()) return *it->second;
  GRAFT_ASSERT(g.n > 0 && g.h > 0 && g.w > 0 && g.c > 0, "bad pool2d shape");
  GRAFT_ASSERT(g.kh > 0 && g.kw > 0 && g.stride > 0 && g.pad >= 0, "bad pool2d window");
  GRAFT_ASSERT(g.out_h() > 0 && g.out_w() > 0, "pool2d window larger than the padded input");
  auto plan = std::make_unique<PoolPlan>();
  PoolPlan& p = *plan;
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  GRAFT_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&p.pool));
  GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.n, g.c, g.h, g.w));
  GRAFT_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.n, g.c, g.out_h(), g.out_w()));
  GRAFT_CUDNN_CHECK(cudnnSetPooling2dDescriptor(
      p.pool, mode == kMax ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
      CUDNN_PROPAGATE_NAN, g.kh, g.kw, g.pad, g.pad, g.stride, g.stride));
  int on = 0, oc = 0, oh = 0, ow = 0;
  GRAFT_CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(p.pool, p.x, &on, &oc, &oh, &ow));
  GRAFT_ASSERT(on == g.n && oc == g.c && oh == g.out_h() && ow == g.out_w(), "cuDNN disagrees on pool2d output shape");
  return *ctx.pool_plans.emplace(key, std::move(plan)).first->second;
}

void forward(LibraryContext& ctx, const Pool2dGeometry& g, Mode mode, const float* x, float* y, cudaStream_t stream) {
  if (g.n == 0) return;
  PoolPlan& p = get_plan(ctx, g, mode);
  const float one = 1.0f, zero = 0.0f;
  GRAFT_CUDNN_CHECK(cudnnPoolingForward(ctx.cudnn(stream), p.pool, &one, p.x, x, &zero, p.y, y));
}

void backward(LibraryContext& ctx, const Pool2dGeometry& g, Mode mode, const float* x, const float* y, const float* dy,
              float* dx, cudaStream_t stream) {
  if (g.n == 0) return;
  PoolPlan& p = get_plan(ctx, g, mode);
  const float one = 1.0f, zero = 0.0f;
  // cuDNN 9's order (cudnn_ops.h): alpha, (yDesc, y), (dyDesc, dy), (xDesc, x), beta, (dxDesc, dx).
  GRAFT_CUDNN_CHECK(cudnnPoolingBackward(ctx.cudnn(stream), p.pool, &one, p.y, y, p.y, dy, p.x, x, &zero, p.x, dx));
}

Pool2dGeometry global_geometry(int n, int h, int w, int c) {
  Pool2dGeometry g;
  g.n = n;
  g.h = h;
  g.w = w;
  g.c = c;
  g.kh = h;
  g.kw = w;
  g.stride = 1;
  g.pad = 0;
  return g;
}

}  // namespace

void maxpool2d_forward(LibraryContext& ctx, const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream) {
  forward(ctx, g, kMax, x, y, stream);
}

void maxpool2d_backward(LibraryContext& ctx, const Pool2dGeometry& g, const float* x, const float* y, const float* dy,
                        float* dx, cudaStream_t stream) {
  backward(ctx, g, kMax, x, y, dy, dx, stream);
}

void avgpool2d_forward(LibraryContext& ctx, const Pool2dGeometry& g, const float* x, float* y, cudaStream_t stream) {
  forward(ctx, g, kAvg, x, y, stream);
}

// Average pooling's gradient does not depend on x or y; cuDNN's interface still takes them,
// so dy stands in for y and dx for x (never read in this mode: tests/gpu/pool_test.cpp
// poisons dx with NaN before the call, so a read would show).
void avgpool2d_backward(LibraryContext& ctx, const Pool2dGeometry& g, const float* dy, float* dx, cudaStream_t stream) {
  backward(ctx, g, kAvg, dx, dy, dy, dx, stream);
}

void global_avgpool_forward(LibraryContext& ctx, int n, int h, int w, int c, const float* x, float* y,
                            cudaStream_t stream) {
  forward(ctx, global_geometry(n, h, w, c), kAvg, x, y, stream);
}

void global_avgpool_backward(LibraryContext& ctx, int n, int h, int w, int c, const float* dy, float* dx,
                             cudaStream_t stream) {
  const Pool2dGeometry g = global_geometry(n, h, w, c);
  backward(ctx, g, kAvg, dx, dy, dy, dx, stream);
}

}  // namespace graft::lib
