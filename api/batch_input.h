// A public Batch into an executor's input: shape and pointers checked against the model,
// device memory copied on the caller's stream, uint8 pixels normalized, labels checked.
#pragma once
#include <cstdint>

#include "graft/graft.hpp"
#include "runtime/model.h"

namespace graft::api_detail {

// Writes the batch's images (floats) and, when `with_labels`, its labels into `input` and
// `labels` (room for `capacity` examples); returns n. Errors name `call` and the argument.
int64_t stage_batch(const api::Batch& batch, const Model& model, int64_t capacity, float* input, int32_t* labels,
                    bool with_labels, const char* call);

}  // namespace graft::api_detail
