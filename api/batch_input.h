// A public Batch into an executor's input: shape and pointers checked against the model,
// device memory copied on the caller's stream, uint8 pixels normalized, labels checked.
#pragma once
#include <cstdint>
#include <vector>

#include "graft/graft.hpp"
#include "runtime/model.h"

namespace graft::api_detail {

// Where stage_batch put the batch: n examples; their floats in `input` (host staging), or
// already in the device buffer when the caller's floats were in device memory.
struct StagedBatch {
  int64_t n = 0;
  bool images_on_device = false;
  std::vector<int32_t> lengths;  // Batch::lengths on the host, checked; empty without
};

// Writes the batch's images (floats) and, when `with_labels`, its labels into `input` and
// `labels` (room for `capacity` examples). Float images in device memory go straight to
// `device_input` when the model runs on the device (non-null), else through the host.
// Errors name `call` and the argument.
StagedBatch stage_batch(const api::Batch& batch, const Model& model, int64_t capacity, float* input,
                        float* device_input, int32_t* labels, bool with_labels, const char* call);

}  // namespace graft::api_detail
