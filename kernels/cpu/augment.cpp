// The augmentation's per-pixel loop on the CPU.
#include "kernels/cpu/augment.h"

#include <cstddef>

namespace graft::cpu {

void augment_batch(int n, int h, int w, const uint8_t* images, const math::WarpExample* examples,
                   const math::WarpNorm& norm, float* out) {
  const size_t per = size_t(h) * size_t(w) * 3;
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c)
        math::warp_pixel(images + size_t(i) * per, h, w, examples[i], norm, r, c,
                         out + size_t(i) * per + (size_t(r) * size_t(w) + size_t(c)) * 3);
}

}  // namespace graft::cpu
