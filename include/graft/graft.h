/* graft's public C API: the C++ API (graft/graft.hpp) through opaque handles and status
 * codes, for C and for Fortran (iso_c_binding). docs/library.md is the guide.
 *
 * Every call returns GRAFT_OK or an error status; the handle then keeps the message (the
 * words graft's command line prints) until its next call: graft_model_last_error. A model
 * is used by one thread at a time; different models are independent. Pointers are borrowed
 * for the call only. Shapes are NHWC: {n, H, W, C}. */
#ifndef GRAFT_GRAFT_H
#define GRAFT_GRAFT_H

#include <stddef.h>
#include <stdint.h>

/* What libgraft.so exports (the engine inside it is built hidden). */
#ifndef GRAFT_C_API
#if defined(__GNUC__) || defined(__clang__)
#define GRAFT_C_API __attribute__((visibility("default")))
#else
#define GRAFT_C_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct graft_model graft_model;

typedef enum graft_status {
  GRAFT_OK = 0,
  GRAFT_ERROR = 1,              /* the call failed: graft_model_last_error says why */
  GRAFT_ERROR_NULL_HANDLE = 2,  /* the model handle is null */
  GRAFT_ERROR_OUT_OF_MEMORY = 3
} graft_status;

enum { GRAFT_DEVICE_CPU = 0, GRAFT_DEVICE_CUDA = 1 };
/* Where a pointer points: host memory, or the memory of the model's CUDA device. */
enum { GRAFT_MEMORY_HOST = 0, GRAFT_MEMORY_DEVICE = 1 };
/* uint8 pixels to floats (graft train --normalize). */
enum { GRAFT_NORMALIZE_UNIT = 0, GRAFT_NORMALIZE_IMAGENET = 1, GRAFT_NORMALIZE_CAFFE = 2, GRAFT_NORMALIZE_TF = 3,
       GRAFT_NORMALIZE_RAW = 4 };

/* "0.1.0": the library's version. */
GRAFT_C_API const char* graft_version(void);

/* Builds a model: a zoo architecture ("fmnist_cnn", "vgg16", ...), one example's {H, W, C}
 * (null: the architecture's), the class count, a head spec (null or "": the architecture's
 * own top), the initialisation seed and GRAFT_DEVICE_*. *out is a handle even when this
 * fails (null only when out of memory): read graft_model_last_error, then destroy it. */
GRAFT_C_API graft_status graft_model_create(const char* architecture, const int64_t* input_hwc, int classes, const char* head,
                                uint64_t seed, int device, graft_model** out);
GRAFT_C_API void graft_model_destroy(graft_model* model); /* null is fine */
/* The last call's error message; "" after a call that succeeded. Valid until the next call. */
GRAFT_C_API const char* graft_model_last_error(const graft_model* model);

GRAFT_C_API graft_status graft_model_load(graft_model* model, const char* path, int strict);
GRAFT_C_API graft_status graft_model_save(graft_model* model, const char* path);
/* Freezing by layer pattern ("conv*", "features.0..features.9"); starts a new training stage. */
GRAFT_C_API graft_status graft_model_freeze(graft_model* model, const char* pattern);
GRAFT_C_API graft_status graft_model_unfreeze(graft_model* model, const char* pattern);
/* optimizer: "sgd", "adam" or "adamw"; weight_decay is L2 for sgd/adam, decoupled for adamw. */
GRAFT_C_API graft_status graft_model_configure(graft_model* model, int64_t batch, const char* optimizer, float lr, float momentum,
                                   float weight_decay);

/* One optimizer step on n labelled examples: float images, or uint8 pixels with a
 * GRAFT_NORMALIZE_* preset. memory: GRAFT_MEMORY_*; stream: the cudaStream_t the caller's work
 * on the batch runs on (device memory; null: the default stream). loss may be null. */
GRAFT_C_API graft_status graft_model_train_step(graft_model* model, const float* images, const int32_t* labels,
                                    const int64_t* shape_nhwc, int memory, void* stream, double* loss);
GRAFT_C_API graft_status graft_model_train_step_u8(graft_model* model, const uint8_t* images, const int32_t* labels,
                                       const int64_t* shape_nhwc, int normalize, int memory, void* stream,
                                       double* loss);
/* Logits [n, classes] in inference mode into `logits` (GRAFT_MEMORY_* as logits_memory). */
GRAFT_C_API graft_status graft_model_forward(graft_model* model, const float* images, const int64_t* shape_nhwc, int memory,
                                 void* stream, float* logits, int logits_memory);
GRAFT_C_API graft_status graft_model_evaluate(graft_model* model, const float* images, const int32_t* labels,
                                  const int64_t* shape_nhwc, int memory, void* stream, double* loss,
                                  double* accuracy);
/* Sequence models: a sequence spec as graft train --model takes ("lstm:128x2,last,dense:N",
 * "embedding:20000x64,pad:0,gru:64,bi,mean,dense:N"), one example being `steps` steps of
 * `features` floats (1: token ids after an embedding). The model's calls above take such a
 * batch as {n, steps, features, 1}; these take {n, steps, features} and `lengths`: n ints,
 * 1..steps, the real steps of each example (the rest is padding the model never reads), in
 * the same memory as x; null: every example has all its steps. */
GRAFT_C_API graft_status graft_model_create_sequence(const char* spec, int64_t steps, int64_t features, int classes,
                                         uint64_t seed, int device, graft_model** out);
GRAFT_C_API graft_status graft_model_train_step_sequence(graft_model* model, const float* x, const int32_t* labels,
                                             const int64_t* shape_nsf, const int32_t* lengths, int memory,
                                             void* stream, double* loss);
GRAFT_C_API graft_status graft_model_forward_sequence(graft_model* model, const float* x, const int64_t* shape_nsf,
                                          const int32_t* lengths, int memory, void* stream, float* logits,
                                          int logits_memory);
GRAFT_C_API graft_status graft_model_evaluate_sequence(graft_model* model, const float* x, const int32_t* labels,
                                           const int64_t* shape_nsf, const int32_t* lengths, int memory,
                                           void* stream, double* loss, double* accuracy);

/* The planned peak memory of a training step in bytes (parameters, gradients, optimizer
 * state, activations, workspace, batch). */
GRAFT_C_API graft_status graft_model_planned_bytes(graft_model* model, uint64_t* peak);
/* Optimizer steps taken in this training stage; -1 for a null handle. */
GRAFT_C_API int64_t graft_model_step(const graft_model* model);

#ifdef __cplusplus
}
#endif
#endif /* GRAFT_GRAFT_H */
