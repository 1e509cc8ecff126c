// Input augmentation on the CPU from images already at the model's input size: the warp,
// flips and normalization of kernels/common/warp_math.h per output pixel, the loop the CUDA
// kernel (kernels/cuda/augment.h) runs one thread per pixel.
#pragma once
#include <cstdint>

#include "kernels/common/warp_math.h"

namespace graft::cpu {

// images: [n, h, w, 3] uint8; examples: n transforms; out: [n, h, w, 3] floats.
void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                   const math::WarpNorm& norm, float* out);

}  // namespace graft::cpu
