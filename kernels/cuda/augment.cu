#include "kernels/cuda/augment.h"

#include "kernels/cuda/launch.cuh"

namespace graft::cuda {

namespace {

__global__ void augment_kernel(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                               math::WarpNorm norm, float* out) {
  const int64_t pixels = int64_t(h) * w, count = int64_t(n) * pixels;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < count; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t e = i / pixels, p = i % pixels;
    const int r = int(p / w), c = int(p % w);
    math::warp_pixel(images + e * pixels * 3, h, w, examples[e], norm, r, c, out + i * 3);
  }
}

}  // namespace

void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                   const math::WarpNorm& norm, float* out, cudaStream_t stream) {
  if (n <= 0 || h <= 0 || w <= 0) return;
  const int64_t count = int64_t(n) * h * w;
  augment_kernel<<<detail::grid_for(count), detail::kThreads, 0, stream>>>(n, h, w, images, examples, norm, out);
  GRAFT_CUDA_CHECK_LAUNCH();
}

}  // namespace graft::cuda
