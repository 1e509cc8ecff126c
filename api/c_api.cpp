// The C API (include/graft/graft.h) over the C++ one: a handle owns a graft::api::Model (or
// none, when building it failed) and the last error's message; no exception crosses it.
#include "graft/graft.h"

#include <memory>
#include <new>
#include <optional>
#include <string>

#include "graft/graft.hpp"

struct graft_model {
  std::optional<graft::api::Model> model;
  std::string error;
};

namespace {

// Runs `f` on the handle's model, keeping any error's message in the handle.
template <typename F>
graft_status call(graft_model* h, F&& f) {
  if (!h) return GRAFT_ERROR_NULL_HANDLE;
  h->error.clear();
  try {
    if (!h->model) throw graft::api::Error("this handle holds no model (graft_model_create failed); destroy it");
    f(*h->model);
    return GRAFT_OK;
  } catch (const std::bad_alloc&) {
    h->error = "out of host memory";
    return GRAFT_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    h->error = e.what();
    return GRAFT_ERROR;
  }
}

graft::api::Batch batch(const void* images, const int32_t* labels, const int64_t* shape, int memory, void* stream) {
  if (!shape) throw graft::api::Error("shape_nhwc is null; pass {n, H, W, C}");
  if (memory != GRAFT_MEMORY_HOST && memory != GRAFT_MEMORY_DEVICE)
    throw graft::api::Error("memory must be GRAFT_MEMORY_HOST or GRAFT_MEMORY_DEVICE, got " + std::to_string(memory));
  graft::api::Batch b;
  b.images = images;
  b.labels = labels;
  b.shape = {shape[0], shape[1], shape[2], shape[3]};
  b.memory = memory == GRAFT_MEMORY_DEVICE ? graft::api::Memory::Device : graft::api::Memory::Host;
  b.stream = stream;
  return b;
}

// {n, steps, features} and the examples' lengths, shaped as the model's input: a model
// created from {steps, features} takes them so; one created from {H, W, C} = {steps,
// features, 1} (graft_model_create) takes {n, steps, features, 1}.
graft::api::Batch sequence_batch(const graft::api::Model& m, const float* x, const int32_t* labels,
                                 const int64_t* shape, const int32_t* lengths, int memory, void* stream) {
  if (!shape) throw graft::api::Error("shape_nsf is null; pass {n, steps, features}");
  const int64_t nhwc[4] = {shape[0], shape[1], shape[2], 1};
  graft::api::Batch b = batch(x, labels, nhwc, memory, stream);
  if (m.input_shape().size() == 2) b.shape.pop_back();
  b.lengths = lengths;
  return b;
}

std::string text(const char* s, const char* what) {
  if (!s) throw graft::api::Error(std::string(what) + " is null");
  return s;
}

// A new handle holding the model `make_spec` describes, or the reason there is none.
template <typename F>
graft_status create(graft_model** out, int device, F&& make_spec) {
  if (!out) return GRAFT_ERROR_NULL_HANDLE;
  *out = new (std::nothrow) graft_model;
  if (!*out) return GRAFT_ERROR_OUT_OF_MEMORY;
  try {
    graft::api::ModelSpec spec = make_spec();
    if (device != GRAFT_DEVICE_CPU && device != GRAFT_DEVICE_CUDA)
      throw graft::api::Error("device must be GRAFT_DEVICE_CPU or GRAFT_DEVICE_CUDA, got " + std::to_string(device));
    spec.device = device == GRAFT_DEVICE_CUDA ? graft::api::Device::Cuda : graft::api::Device::Cpu;
    (*out)->model.emplace(spec);
    return GRAFT_OK;
  } catch (const std::bad_alloc&) {
    (*out)->error = "out of host memory";
    return GRAFT_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    (*out)->error = e.what();
    return GRAFT_ERROR;
  }
}

}  // namespace

extern "C" {

const char* graft_version(void) {
  static const std::string v = graft::api::version();
  return v.c_str();
}

graft_status graft_model_create(const char* architecture, const int64_t* input_hwc, int classes, const char* head,
                                uint64_t seed, int device, graft_model** out) {
  return create(out, device, [&] {
    graft::api::ModelSpec spec;
    spec.architecture = text(architecture, "architecture");
    if (input_hwc) spec.input = {input_hwc[0], input_hwc[1], input_hwc[2]};
    spec.classes = classes;
    spec.head = head ? head : "";
    spec.seed = seed;
    return spec;
  });
}

graft_status graft_model_create_sequence(const char* spec_text, int64_t steps, int64_t features, int classes,
                                         uint64_t seed, int device, graft_model** out) {
  return create(out, device, [&] {
    graft::api::ModelSpec spec;
    spec.architecture = text(spec_text, "spec");
    spec.input = {steps, features};
    spec.classes = classes;
    spec.seed = seed;
    return spec;
  });
}

void graft_model_destroy(graft_model* model) { delete model; }

const char* graft_model_last_error(const graft_model* model) {
  return model ? model->error.c_str() : "the model handle is null";
}

graft_status graft_model_load(graft_model* h, const char* path, int strict) {
  return call(h, [&](graft::api::Model& m) { m.load(text(path, "path"), strict != 0); });
}

graft_status graft_model_save(graft_model* h, const char* path) {
  return call(h, [&](graft::api::Model& m) { m.save(text(path, "path")); });
}

graft_status graft_model_freeze(graft_model* h, const char* pattern) {
  return call(h, [&](graft::api::Model& m) { m.freeze({text(pattern, "pattern")}); });
}

graft_status graft_model_unfreeze(graft_model* h, const char* pattern) {
  return call(h, [&](graft::api::Model& m) { m.unfreeze({text(pattern, "pattern")}); });
}

graft_status graft_model_configure(graft_model* h, int64_t batch_size, const char* optimizer, float lr, float momentum,
                                   float weight_decay) {
  return call(h, [&](graft::api::Model& m) {
    graft::api::TrainSettings s;
    s.batch = batch_size;
    s.optimizer.kind = text(optimizer, "optimizer");
    s.optimizer.lr = lr;
    s.optimizer.momentum = momentum;
    s.optimizer.weight_decay = weight_decay;
    m.configure(s);
  });
}

graft_status graft_model_train_step(graft_model* h, const float* images, const int32_t* labels,
                                    const int64_t* shape_nhwc, int memory, void* stream, double* loss) {
  return call(h, [&](graft::api::Model& m) {
    const auto r = m.train_step(batch(images, labels, shape_nhwc, memory, stream));
    if (loss) *loss = r.loss;
  });
}

graft_status graft_model_train_step_u8(graft_model* h, const uint8_t* images, const int32_t* labels,
                                       const int64_t* shape_nhwc, int normalize, int memory, void* stream,
                                       double* loss) {
  return call(h, [&](graft::api::Model& m) {
    graft::api::Batch b = batch(images, labels, shape_nhwc, memory, stream);
    if (normalize < GRAFT_NORMALIZE_UNIT || normalize > GRAFT_NORMALIZE_RAW)
      throw graft::api::Error("normalize must be one of GRAFT_NORMALIZE_UNIT .. GRAFT_NORMALIZE_RAW, got " +
                              std::to_string(normalize));
    b.uint8 = true;
    b.normalize = static_cast<graft::api::Normalize>(normalize);
    const auto r = m.train_step(b);
    if (loss) *loss = r.loss;
  });
}

graft_status graft_model_forward(graft_model* h, const float* images, const int64_t* shape_nhwc, int memory,
                                 void* stream, float* logits, int logits_memory) {
  return call(h, [&](graft::api::Model& m) {
    m.forward(batch(images, nullptr, shape_nhwc, memory, stream), logits,
              logits_memory == GRAFT_MEMORY_DEVICE ? graft::api::Memory::Device : graft::api::Memory::Host);
  });
}

graft_status graft_model_evaluate(graft_model* h, const float* images, const int32_t* labels,
                                  const int64_t* shape_nhwc, int memory, void* stream, double* loss,
                                  double* accuracy) {
  return call(h, [&](graft::api::Model& m) {
    const auto r = m.evaluate(batch(images, labels, shape_nhwc, memory, stream));
    if (loss) *loss = r.loss;
    if (accuracy) *accuracy = r.accuracy;
  });
}

graft_status graft_model_train_step_sequence(graft_model* h, const float* x, const int32_t* labels,
                                             const int64_t* shape_nsf, const int32_t* lengths, int memory,
                                             void* stream, double* loss) {
  return call(h, [&](graft::api::Model& m) {
    const auto r = m.train_step(sequence_batch(m, x, labels, shape_nsf, lengths, memory, stream));
    if (loss) *loss = r.loss;
  });
}

graft_status graft_model_forward_sequence(graft_model* h, const float* x, const int64_t* shape_nsf,
                                          const int32_t* lengths, int memory, void* stream, float* logits,
                                          int logits_memory) {
  return call(h, [&](graft::api::Model& m) {
    m.forward(sequence_batch(m, x, nullptr, shape_nsf, lengths, memory, stream), logits,
              logits_memory == GRAFT_MEMORY_DEVICE ? graft::api::Memory::Device : graft::api::Memory::Host);
  });
}

graft_status graft_model_evaluate_sequence(graft_model* h, const float* x, const int32_t* labels,
                                           const int64_t* shape_nsf, const int32_t* lengths, int memory,
                                           void* stream, double* loss, double* accuracy) {
  return call(h, [&](graft::api::Model& m) {
    const auto r = m.evaluate(sequence_batch(m, x, labels, shape_nsf, lengths, memory, stream));
    if (loss) *loss = r.loss;
    if (accuracy) *accuracy = r.accuracy;
  });
}

graft_status graft_model_planned_bytes(graft_model* h, uint64_t* peak) {
  return call(h, [&](graft::api::Model& m) {
    const auto p = m.planned_memory();
    if (peak) *peak = p.peak;
  });
}

int64_t graft_model_step(const graft_model* h) { return h && h->model ? h->model->step() : -1; }

}  // extern "C"
