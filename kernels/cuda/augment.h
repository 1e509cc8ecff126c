// Input augmentation on the device: a batch of uint8 images already at the model's input
// size (what the decoded-image cache holds) warped, flipped and normalized into the model's
// float input in one kernel, one thread per output pixel, with the per-pixel math of the CPU
// pipeline (kernels/common/warp_math.h). The CPU's apply_augment is the oracle
// (tests/gpu/augment_test.cpp). Device pointers, one stream.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/common/warp_math.h"

namespace graft::cuda {

// images: [n, h, w, 3] uint8; examples: n transforms (device memory); out: [n, h, w, 3].
void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                   const math::WarpNorm& norm, float* out, cudaStream_t stream);

}  // namespace graft::cuda
