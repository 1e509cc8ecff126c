// graft's public C++ API: build a model (a zoo name and a head), load and save safetensors,
// freeze by pattern, set the optimizer and schedule, then train_step and forward on batches
// the caller holds in host or device memory. The only C++ header a consumer includes; no
// third-party type crosses it. docs/library.md is the guide.
//
// Thread-safety: a graft::api::Model is used by one thread at a time (calls on one model
// must not overlap); different models are independent and may be used from different
// threads at once. The library keeps no global state of its own: everything a model needs
// is in the model.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#define GRAFT_VERSION_MAJOR 0
#define GRAFT_VERSION_MINOR 1
#define GRAFT_VERSION_PATCH 0

// What libgraft.so exports: the API alone (the engine inside is built hidden).
#ifndef GRAFT_API
#if defined(__GNUC__) || defined(__clang__)
#define GRAFT_API __attribute__((visibility("default")))
#else
#define GRAFT_API
#endif
#endif

namespace graft::api {

// Every failure: the message names the thing (a path, a tensor, a layer, a setting) and what
// to do, the same words graft's command line prints.
class GRAFT_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// "0.1.0": the library this program runs with (may differ from the header's macros).
GRAFT_API std::string version();

enum class Device { Cpu, Cuda };
// Where a batch's pointers point: host memory, or the memory of the model's CUDA device.
enum class Memory { Host, Device };
// uint8 pixels to floats, graft train --normalize's presets: unit (x/255), imagenet
// (torchvision's mean and std after x/255), caffe (BGR, minus the means on 0..255), tf
// (x/127.5 - 1), raw (x). Only unit and raw apply to inputs without 3 channels.
enum class Normalize { Unit, Imagenet, Caffe, Tf, Raw };
enum class BatchNormPolicy { Train, FrozenStats, Frozen };

struct ModelSpec {
  std::string architecture = "fmnist_cnn";  // a zoo name: fmnist_cnn, vgg11..vgg19, resnet18/34/50
  // One example's [H, W, C] (images), or [steps, features] (sequence specs: "lstm:128x2,last,dense:N",
  // "embedding:20000x64,pad:0,gru:64,bi,mean,dense:N" with [steps, 1] token ids; grammar in
  // docs/library.md); empty: the architecture's (28x28x1, 224x224x3; a sequence spec has none).
  std::vector<int64_t> input;
  int classes = 10;
  std::string head;                         // "" : the architecture's own top; else a head spec, e.g. "flatten,dense:128,relu,dense:N"
  bool include_top = true;
  int width_divisor = 1;                    // small test models with torchvision's structure
  uint64_t seed = 0;                        // parameter initialisation (and dropout)
  Device device = Device::Cpu;
};

struct LoadReport {
  std::vector<std::string> loaded, not_in_model, shape_mismatch, not_in_file, excluded;
};

struct OptimizerSettings {
  std::string kind = "adam";  // sgd, adam, adamw
  float lr = 1e-3f;
  float momentum = 0.0f;
  bool nesterov = false;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;  // L2 for sgd/adam, decoupled for adamw
};

struct ScheduleSettings {
  std::string kind = "constant";  // constant, step, cosine
  int64_t warmup_steps = 0;
  int64_t step_size = 0;          // step
  float gamma = 0.1f;             // step
  float min_lr = 0.0f;            // cosine
  int64_t total_steps = 0;        // cosine: required
};

struct TrainSettings {
  int64_t batch = 64;              // the largest batch train_step and forward take
  OptimizerSettings optimizer;
  ScheduleSettings schedule;
  std::string loss = "ce";         // ce (softmax cross-entropy) or mse (on one-hot targets)
  float label_smoothing = 0.0f;
};

// A batch of n examples in NHWC order (or [n, steps, features] for sequence models):
// floats, or uint8 pixels normalized on the way in. Pointers are borrowed for the call only
// and copied in before it returns; `memory` says where they point.
struct Batch {
  const void* images = nullptr;     // [n, H, W, C] or [n, steps, features]
  const int32_t* labels = nullptr;  // [n], 0 .. classes-1 (train_step, evaluate)
  std::vector<int64_t> shape;       // {n, H, W, C} of images: checked against the model's input
  Memory memory = Memory::Host;
  bool uint8 = false;               // images are uint8, normalized with `normalize`
  Normalize normalize = Normalize::Unit;
  void* stream = nullptr;           // cudaStream_t the caller's work on the batch runs on (Memory::Device)
  // Sequences of different lengths: [n] real steps of each example, 1..steps, the rest of
  // its rows padding that the model ignores; null: every example has all its steps.
  const int32_t* lengths = nullptr;
};

struct StepResult {
  double loss = 0;      // the batch's mean loss
  int64_t step = 0;     // optimizer steps taken so far
  double lr = 0;        // the learning rate this step used
};

struct Metrics {
  double loss = 0, accuracy = 0;
  int64_t examples = 0;
};

// The memory a training step plans before it runs (bytes).
struct MemoryPlan {
  size_t parameters = 0, gradients = 0, optimizer = 0, activations = 0, workspace = 0, io = 0, peak = 0;
};

class GRAFT_API Model {
 public:
  // Throws Error naming the architecture, the head token or the device.
  explicit Model(const ModelSpec& spec);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Loads the tensors of a safetensors file whose names and shapes match (strict: all must).
  // `only`: layer patterns to load. After a failed load the model refuses every call but
  // load() and save() until a load succeeds (its parameters may be half written).
  LoadReport load(const std::string& path, bool strict = false, const std::vector<std::string>& only = {});
  // Writes a graft checkpoint (parameters, optimizer state when training began), atomically.
  void save(const std::string& path) const;

  // Freezing by layer pattern ("conv*", "features.0..features.9", "backbone"), as graft
  // train --freeze. Changing it starts a new training stage: the optimizer state is reset.
  void freeze(const std::vector<std::string>& patterns);
  void unfreeze(const std::vector<std::string>& patterns);
  std::vector<std::string> frozen_layers() const;
  void set_batchnorm_policy(const std::string& pattern, BatchNormPolicy policy);

  // Settings for train_step; a new setting starts a new training stage.
  void configure(const TrainSettings& settings);
  // One optimizer step on the batch (labels required). Returns when the step is done.
  StepResult train_step(const Batch& batch);
  // Logits [n, classes] of the batch in inference mode into `logits` (host or device memory,
  // as `logits_memory`; n * classes floats).
  void forward(const Batch& batch, float* logits, Memory logits_memory = Memory::Host);
  // Loss and accuracy of a labelled batch, in inference mode.
  Metrics evaluate(const Batch& batch);

  MemoryPlan planned_memory();
  int classes() const;
  std::vector<int64_t> input_shape() const;       // [H, W, C] or [steps, features]
  std::vector<std::string> parameter_names() const;
  // A copy of one parameter tensor (PyTorch's layout, as saved).
  std::vector<float> parameter(const std::string& name) const;
  // Its shape in that layout (a dense weight's [out, in], a convolution's [out, in, kh, kw]).
  std::vector<int64_t> parameter_shape(const std::string& name) const;
  int64_t step() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft::api
