#include "kernels/lib/conv.h"

#include <algorithm>
#include <memory>

#include "kernels/cuda/tensor_core_gemm.h"
#include "kernels/lib/plans.cuh"
#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::lib {

namespace {

bool exact_fwd(cudnnConvolutionFwdAlgo_t a) {
  return a != CUDNN_CONVOLUTION_FWD_ALGO_FFT && a != CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING &&
         a != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD && a != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool exact_bwd_data(cudnnConvolutionBwdDataAlgo_t a) {
  return a != CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT && a != CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING &&
         a != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD && a != CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool exact_bwd_filter(cudnnConvolutionBwdFilterAlgo_t a) {
  return a != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT && a != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING &&
         a != CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// The math type the search runs with: exact fp32 allows FMA only (cuDNN's DEFAULT_MATH lets
// fp32 convolutions use TF32 tensor cores on Ampere and later); tf32 allows TF32 through
// DEFAULT_MATH; bf16 asks for tensor cores.
cudnnMathType_t search_math(const LibraryOptions& o) {
  return o.bf16 ? CUDNN_TENSOR_OP_MATH : o.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// Whether a perf entry may be used under the context's options.
template <class Perf, class Exact>
bool acceptable(const Perf& p, const LibraryOptions& o, Exact exact) {
  if (p.status != CUDNN_STATUS_SUCCESS || p.memory > o.max_conv_workspace_bytes) return false;
  if (o.deterministic && p.determinism != CUDNN_DETERMINISTIC) return false;
  if (o.bf16) return true;
  // TF32: any math but a down-conversion of fp32 operands to fp16/bf16.
  if (o.allow_tf32) return p.mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  return exact(p.algo) && (p.mathType == CUDNN_FMA_MATH || p.mathType == CUDNN_DEFAULT_MATH);
}

// The math type a chosen entry runs with: its own, except that exact fp32 always runs FMA
// (an entry reported as DEFAULT_MATH would otherwise be free to use TF32).
cudnnMathType_t run_math(cudnnMathType_t found, const LibraryOptions& o) {
  return o.bf16 || o.allow_tf32 ? found : CUDNN_FMA_MATH;
}

LibraryContext::ConvKey key_of(const Conv2dGeometry& g) {
  return {g.n, g.h, g.w, g.c_in, g.c_out, g.kh, g.kw, g.stride, g.pad};
}

ConvPlan& get_plan(LibraryContext& ctx, const Conv2dGeometry& g) {
  const auto key = key_of(g);
  if (auto it = ctx.conv_plans.find(key); it != ctx.conv_plans.end()) return *it->second;

  GRAFT_ASSERT(g.n > 0 && g.h > 0 && g.w > 0 && g.c_in > 0 && g.c_out > 0, "bad conv2d shape");
  GRAFT_ASSERT(g.kh > 0 && g.kw > 0 && g.stride > 0 && g.pad >= 0, "bad conv2d window");
  GRAFT_ASSERT(g.out_h() > 0 && g.out_w() > 0, "conv2d kernel larger than the padded input");
  auto plan = std::make_unique<ConvPlan>();
  ConvPlan& p = *plan;
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
  GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.bias));
  GRAFT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
  GRAFT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
  GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.n, g.c_in, g.h, g.w));
  GRAFT_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.n, g.c_out, g.out_h(), g.out_w()));
  GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, g.c_out, 1, 1));
  GRAFT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, g.c_out, g.c_in, g.kh, g.kw));
  GRAFT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv, g.pad, g.pad, g.stride, g.stride, 1, 1,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  const LibraryOptions& o = ctx.options();
  const cudnnMathType_t searched = search_math(o);
  // bf16: the convolutions see bf16 tensors (cuDNN's BFLOAT16 configuration: bf16 x, w, y,
  // fp32 compute, the descriptor above); the algorithm search below runs on them.
  cudnnTensorDescriptor_t xd = p.x, yd = p.y;
  cudnnFilterDescriptor_t wd = p.w;
  if (o.bf16) {
    GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x16));
    GRAFT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y16));
    GRAFT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w16));
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x16, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, g.n, g.c_in, g.h, g.w));
    GRAFT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y16, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, g.n, g.c_out,
                                                 g.out_h(), g.out_w()));
    GRAFT_CUDNN_CHECK(
        cudnnSetFilter4dDescriptor(p.w16, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, g.c_out, g.c_in, g.kh, g.kw));
    xd = p.x16;
    yd = p.y16;
    wd = p.w16;
    // Staging: 0 holds x or dy, 1 the weights or their gradient, 2 y, dx or dy.
    const size_t act = size_t(std::max(g.input_numel(), g.output_numel()));
    ctx.bf16_staging(0, act);
    ctx.bf16_staging(1, size_t(g.weight_numel()));
    ctx.bf16_staging(2, act);
  }

  int on = 0, oc = 0, oh = 0, ow = 0;
  GRAFT_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.conv, p.x, p.w, &on, &oc, &oh, &ow));
  GRAFT_ASSERT(on == g.n && oc == g.c_out && oh == g.out_h() && ow == g.out_w(), "cuDNN disagrees on conv2d output shape");

  cudnnHandle_t h = ctx.cudnn(nullptr);
  {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, searched));
    GRAFT_CUDNN_CHECK(
        cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, p.conv, yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    int pick = -1;
    for (int i = 0; i < count && pick < 0; ++i)
      if (acceptable(perf[i], o, exact_fwd)) pick = i;
    // The fallbacks are exact and deterministic.
    p.fwd_algo = pick >= 0 ? perf[pick].algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    p.fwd_math = run_math(pick >= 0 ? perf[pick].mathType : searched, o);
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.fwd_math));  // the workspace depends on it
    GRAFT_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, p.conv, yd, p.fwd_algo, &p.fwd_ws));
  }
  {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, searched));
    GRAFT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, wd, yd, p.conv, xd,
                                                                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
    int pick = -1;
    for (int i = 0; i < count && pick < 0; ++i)
      if (acceptable(perf[i], o, exact_bwd_data)) pick = i;
    p.bwd_data_algo = pick >= 0 ? perf[pick].algo : CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    p.bwd_data_math = run_math(pick >= 0 ? perf[pick].mathType : searched, o);
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_data_math));
    GRAFT_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataWorkspaceSize(h, wd, yd, p.conv, xd, p.bwd_data_algo, &p.bwd_data_ws));
  }
  {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, searched));
    GRAFT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, xd, yd, p.conv, wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
    int pick = -1;
    for (int i = 0; i < count && pick < 0; ++i)
      if (acceptable(perf[i], o, exact_bwd_filter)) pick = i;
    p.bwd_filter_algo = pick >= 0 ? perf[pick].algo : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    p.bwd_filter_math = run_math(pick >= 0 ? perf[pick].mathType : searched, o);
    GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_filter_math));
    GRAFT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, xd, yd, p.conv, wd, p.bwd_filter_algo,
                                                                     &p.bwd_filter_ws));
  }
  ctx.reserve_workspace(std::max({p.fwd_ws, p.bwd_data_ws, p.bwd_filter_ws}));
  return *ctx.conv_plans.emplace(key, std::move(plan)).first->second;
}

}  // namespace

void plan_conv2d(LibraryContext& ctx, const Conv2dGeometry& g) {
  if (g.n > 0) get_plan(ctx, g);
}

void conv2d_forward(LibraryContext& ctx, const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y, cudaStream_t stream) {
  if (g.n == 0) return;
  ConvPlan& p = get_plan(ctx, g);
  cudnnHandle_t h = ctx.cudnn(stream);
  GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.fwd_math));
  const float one = 1.0f, zero = 0.0f;
  if (ctx.options().bf16) {
    uint16_t *x16 = ctx.to_bf16(0, g.input_numel(), x, stream), *w16 = ctx.to_bf16(1, g.weight_numel(), w, stream);
    uint16_t* y16 = ctx.bf16_staging(2, size_t(g.output_numel()));
    GRAFT_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x16, x16, p.w16, w16, p.conv, p.fwd_algo, ctx.workspace(),
                                              p.fwd_ws, &zero, p.y16, y16));
    cuda::bf16_to_float(g.output_numel(), y16, y, stream);
  } else {
    GRAFT_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, x, p.w, w, p.conv, p.fwd_algo, ctx.workspace(), p.fwd_ws,
                                              &zero, p.y, y));
  }
  if (bias) GRAFT_CUDNN_CHECK(cudnnAddTensor(h, &one, p.bias, bias, &one, p.y, y));
}

void conv2d_backward_data(LibraryContext& ctx, const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                          cudaStream_t stream) {
  if (g.n == 0) return;
  ConvPlan& p = get_plan(ctx, g);
  cudnnHandle_t h = ctx.cudnn(stream);
  GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_data_math));
  const float one = 1.0f, zero = 0.0f;
  if (ctx.options().bf16) {
    uint16_t *dy16 = ctx.to_bf16(0, g.output_numel(), dy, stream), *w16 = ctx.to_bf16(1, g.weight_numel(), w, stream);
    uint16_t* dx16 = ctx.bf16_staging(2, size_t(g.input_numel()));
    GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w16, w16, p.y16, dy16, p.conv, p.bwd_data_algo,
                                                   ctx.workspace(), p.bwd_data_ws, &zero, p.x16, dx16));
    cuda::bf16_to_float(g.input_numel(), dx16, dx, stream);
    return;
  }
  GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w, w, p.y, dy, p.conv, p.bwd_data_algo, ctx.workspace(),
                                                 p.bwd_data_ws, &zero, p.x, dx));
}

void conv2d_backward_filter(LibraryContext& ctx, const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                            float* dbias, cudaStream_t stream) {
  if (g.n == 0) {  // empty batch: zero gradients
    GRAFT_CUDA_CHECK(cudaMemsetAsync(dw, 0, sizeof(float) * static_cast<size_t>(g.weight_numel()), stream));
    if (dbias) GRAFT_CUDA_CHECK(cudaMemsetAsync(dbias, 0, sizeof(float) * static_cast<size_t>(g.c_out), stream));
    return;
  }
  ConvPlan& p = get_plan(ctx, g);
  cudnnHandle_t h = ctx.cudnn(stream);
  GRAFT_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_filter_math));
  const float one = 1.0f, zero = 0.0f;
  if (ctx.options().bf16) {
    uint16_t *x16 = ctx.to_bf16(0, g.input_numel(), x, stream), *dy16 = ctx.to_bf16(2, g.output_numel(), dy, stream);
    uint16_t* dw16 = ctx.bf16_staging(1, size_t(g.weight_numel()));
    GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x16, x16, p.y16, dy16, p.conv, p.bwd_filter_algo,
                                                     ctx.workspace(), p.bwd_filter_ws, &zero, p.w16, dw16));
    cuda::bf16_to_float(g.weight_numel(), dw16, dw, stream);
  } else {
    GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x, x, p.y, dy, p.conv, p.bwd_filter_algo,
                                                     ctx.workspace(), p.bwd_filter_ws, &zero, p.w, dw));
  }
  if (dbias) GRAFT_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, p.y, dy, &zero, p.bias, dbias));
}

}  // namespace graft::lib
