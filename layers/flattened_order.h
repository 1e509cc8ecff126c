// The order of features after a flatten. graft flattens NHWC activations as (h, w, c);
// PyTorch flattens NCHW as (c, h, w). A layer with a weight column or a value per flattened
// feature (a dense layer, a batch norm after a flatten) keeps one of these, bound by
// Model::finalize (Layer::bind_flattened_input), to map between the two at the checkpoint
// boundary.
#pragma once
#include <cstdint>
#include <string>

#include "base/error.h"

namespace graft {

struct FlattenedOrder {
  int h = 0, w = 0, c = 0;  // 0: not after a flatten: no permutation

  // Binds the flattened [h, w, c] input of `layer`, which has `features` inputs.
  void bind(const std::string& layer, int h_, int w_, int c_, int64_t features) {
    if (int64_t{h_} * w_ * c_ != features)
      fail("layer ", layer, ": flattened input ", h_, "x", w_, "x", c_, " does not have ", features, " features");
    h = h_;
    w = w_;
    c = c_;
  }
  bool active() const { return c != 0; }
  // Where feature j of graft's (h, w, c) order sits in PyTorch's (c, h, w) order.
  int64_t pytorch_index(int64_t j) const { return active() ? (j % c) * (int64_t{h} * w) + j / c : j; }
};

}  // namespace graft
