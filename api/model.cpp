// graft::api::Model: the public model over the engine's Model, Executor and Optimizer, the
// same parts and the same order of calls as graft train (runtime/training_*.cpp), so a step
// here is a step there. Every internal error leaves as graft::api::Error with its message.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <utility>

#include "api/batch_input.h"
#include "api/device_memory.h"
#include "base/error.h"
#include "graft/graft.hpp"
#include "layers/batchnorm.h"
#include "layers/sequence_spec.h"
#include "layers/zoo.h"
#include "runtime/backend_registry.h"
#include "runtime/checkpoint.h"
#include "runtime/executor.h"
#include "runtime/lr_schedule.h"
#include "runtime/memory_pool.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"
#if defined(GRAFT_HAVE_CUDA)
#include "runtime/cuda/backend.h"
#endif

namespace graft::api {

namespace {

// Runs `f`, turning whatever the engine throws into the public Error.
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const api::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw api::Error("out of host memory");
  } catch (const std::exception& e) {
    throw api::Error(e.what());
  }
}

// Every CUDA model of the process works on one compute stream, and a step graph records
// whatever that stream is given while it records: another thread's kernels would land in the
// graph (and replay into its buffers), its allocations would be refused. So the calls of CUDA
// models take turns; CPU models on different threads stay independent.
std::unique_lock<std::mutex> device_turn(Device device) {
  static std::mutex cuda_work;
  return device == Device::Cuda ? std::unique_lock<std::mutex>(cuda_work) : std::unique_lock<std::mutex>();
}

graft::BnPolicy internal_policy(BatchNormPolicy p) {
  switch (p) {
    case BatchNormPolicy::Train: return graft::BnPolicy::Train;
    case BatchNormPolicy::FrozenStats: return graft::BnPolicy::FrozenStats;
    case BatchNormPolicy::Frozen: return graft::BnPolicy::Frozen;
  }
  fail("unknown BatchNormPolicy ", static_cast<int>(p));
}

std::vector<int64_t> default_input(const std::string& architecture) {
  if (architecture == "fmnist_cnn") return {28, 28, 1};
  return {224, 224, 3};
}

}  // namespace

#define GRAFT_API_STR2(x) #x
#define GRAFT_API_STR(x) GRAFT_API_STR2(x)
static_assert(std::string_view(GRAFT_PROJECT_VERSION) ==
                  GRAFT_API_STR(GRAFT_VERSION_MAJOR) "." GRAFT_API_STR(GRAFT_VERSION_MINOR) "." GRAFT_API_STR(GRAFT_VERSION_PATCH),
              "include/graft/graft.hpp's GRAFT_VERSION_* must match project(VERSION) in CMakeLists.txt");

std::string version() {
  return std::to_string(GRAFT_VERSION_MAJOR) + "." + std::to_string(GRAFT_VERSION_MINOR) + "." +
         std::to_string(GRAFT_VERSION_PATCH);
}

struct Model::Impl {
  ModelSpec spec;
  std::unique_ptr<MemoryPool> pool;
  std::unique_ptr<graft::Model> model;
  std::vector<bool> frozen;  // per node
  std::vector<std::pair<std::string, graft::BnPolicy>> bn_overrides;
  TrainSettings settings;
  // The training stage: made at the first train_step after the settings or freezing changed.
  std::unique_ptr<Executor> train_ex;
  std::unique_ptr<Optimizer> optimizer;
  LrScheduleConfig schedule;
  int64_t step = 0;
  std::unique_ptr<Executor> eval_ex;
  std::string broken;  // why the model refuses to run (a failed load), or ""

  void check_usable() const {
    if (!broken.empty())
      fail("this model cannot be used: ", broken,
           "; its parameters may be half written. Load a checkpoint that succeeds, or build a new model");
  }

  // Freezing, the BatchNorm policy or the settings changed: a new stage from step 0.
  void new_stage() {
    train_ex.reset();
    optimizer.reset();
    eval_ex.reset();
    step = 0;
    apply_batchnorm_policy(*model, frozen, bn_overrides);
  }

  Executor& trainer() {
    if (!train_ex) {
      OptimizerConfig oc;
      oc.kind = settings.optimizer.kind;
      oc.lr = settings.optimizer.lr;
      oc.momentum = settings.optimizer.momentum;
      oc.nesterov = settings.optimizer.nesterov;
      oc.beta1 = settings.optimizer.beta1;
      oc.beta2 = settings.optimizer.beta2;
      oc.eps = settings.optimizer.eps;
      oc.weight_decay = settings.optimizer.weight_decay;
      oc.validate();
      schedule.kind = settings.schedule.kind;
      schedule.base_lr = oc.lr;
      schedule.warmup_steps = settings.schedule.warmup_steps;
      schedule.step_size = settings.schedule.step_size;
      schedule.gamma = settings.schedule.gamma;
      schedule.total_steps = settings.schedule.total_steps;
      schedule.min_lr = settings.schedule.min_lr;
      schedule.validate();
      int64_t trainable = 0;
      for (int n = 0; n < model->num_nodes(); ++n)
        if (!frozen[size_t(n)]) trainable += model->node_param_count(n);
      if (trainable == 0)
        fail("every layer with parameters is frozen: nothing to train; unfreeze a layer (unfreeze({\"fc*\"})) first");
      ExecutorOptions eo;
      eo.batch = settings.batch;
      eo.frozen = frozen;
      eo.loss = settings.loss == "mse" ? LossKind::MSE : LossKind::CrossEntropy;
      eo.label_smoothing = settings.label_smoothing;
      eo.seed = spec.seed;
      eo.optimizer_state_per_param = oc.kind == "sgd" ? (oc.momentum != 0.0f ? 1 : 0) : 2;
      eval_ex.reset();  // its buffers go back to the pool first
      train_ex = std::make_unique<Executor>(*model, eo);
      train_ex->set_step_graphs(true);  // before the optimizer's state, the pool's order as graft train
      optimizer = std::make_unique<Optimizer>(oc, train_ex->trainable_count(), *pool);
    }
    return *train_ex;
  }

  Executor& evaluator() {
    if (!eval_ex) {
      ExecutorOptions eo;
      eo.batch = settings.batch;
      eo.training = false;
      eo.loss = settings.loss == "mse" ? LossKind::MSE : LossKind::CrossEntropy;
      eo.seed = spec.seed;
      eval_ex = std::make_unique<Executor>(*model, eo);
    }
    return *eval_ex;
  }

  // The batch into the executor: float images in device memory are copied device to device
  // into its input buffer (then only the labels go up), everything else through the host
  // staging as graft train's batches (keep_input is set per batch, so a failed step leaves
  // nothing behind for the next).
  int64_t stage(Executor& ex, const Batch& batch, bool with_labels, const char* call) {
    ex.keep_input(false);
    // Token ids (a spec that starts with an embedding) are checked against the vocabulary on
    // the host before a kernel reads them, so they take the host path even from device memory.
    const bool token_ids = spec.architecture.find_first_not_of(' ') == spec.architecture.find("embedding");
    float* device_input = pool->device() == graft::Device::CUDA && !token_ids ? ex.device_input() : nullptr;
    const auto staged =
        api_detail::stage_batch(batch, *model, ex.batch(), ex.input(), device_input, ex.labels(), with_labels, call);
    ex.set_lengths(staged.lengths.empty() ? nullptr : staged.lengths.data(), staged.n);
    if (staged.images_on_device) {
      ex.upload_input(staged.n, /*images=*/false);
      ex.keep_input(true);
    }
    return staged.n;
  }

  void check_settings(const TrainSettings& s) const {
    if (s.batch < 1) fail("TrainSettings::batch must be at least 1, got ", s.batch);
    if (s.loss != "ce" && s.loss != "mse") fail("TrainSettings::loss '", s.loss, "' is not one of ce, mse");
    if (s.label_smoothing < 0.0f || s.label_smoothing >= 1.0f)
      fail("TrainSettings::label_smoothing must be in [0, 1), got ", s.label_smoothing);
  }
};

Model::Model(const ModelSpec& spec) : impl_(std::make_unique<Impl>()) {
  guarded([&] {
    const auto turn = device_turn(spec.device);
    Impl& m = *impl_;
    m.spec = spec;
    const bool sequences = is_sequence_spec(spec.architecture);
    const char* dims = sequences ? "{steps, features} (or {H, W, C}: H steps of W*C features)" : "{H, W, C}";
    if (m.spec.input.empty() && sequences)
      fail("ModelSpec::input: the sequence model '", spec.architecture, "' has no default input; give one example's ",
           "{steps, features} ({steps, 1} token ids after an embedding)");
    if (m.spec.input.empty()) m.spec.input = default_input(spec.architecture);
    if (m.spec.input.size() != 3 && !(sequences && m.spec.input.size() == 2))
      fail("ModelSpec::input must be one example's ", dims, ", got ", m.spec.input.size(), " numbers");
    for (int64_t d : m.spec.input)
      if (d < 1) fail("ModelSpec::input must hold positive sizes ", dims, ", got ", d);
    if (spec.classes < 1) fail("ModelSpec::classes must be at least 1, got ", spec.classes);
    if (spec.device == Device::Cuda) {
#if defined(GRAFT_HAVE_CUDA)
      if (!cuda_backend()) register_cuda_backend();  // one the program registered stays
#endif
      std::string why;
      const DeviceBackend* cuda = cuda_backend();
      if (!cuda) fail("Device::Cuda: this graft was built without CUDA (no toolkit found at build time); use Device::Cpu");
      if (!cuda->available(&why)) fail("Device::Cuda: no usable CUDA device: ", why, "; use Device::Cpu");
      cuda->check_supported();
      m.pool = cuda->make_pool();
    } else {
      m.pool = std::make_unique<HostPool>();
    }
    graft::ModelSpec s;
    s.architecture = spec.architecture;
    s.sample_shape = Shape(m.spec.input);
    s.num_classes = spec.classes;
    s.seed = spec.seed;
    s.head = spec.head;
    s.include_top = spec.include_top;
    s.width_divisor = spec.width_divisor;
    m.model = build_model(s, *m.pool);
    m.frozen.assign(size_t(m.model->num_nodes()), false);
  });
}

Model::~Model() {  // its executors and buffers go while no other CUDA model records
  if (!impl_) return;
  const auto turn = device_turn(impl_->spec.device);
  impl_.reset();
}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&& other) noexcept {
  if (this != &other) {
    if (impl_) {
      const auto turn = device_turn(impl_->spec.device);
      impl_.reset();
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

LoadReport Model::load(const std::string& path, bool strict, const std::vector<std::string>& only) {
  return guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    try {
      const auto file = read_safetensors(path);
      const auto r = load_parameters(*m.model, file, path, LoadOptions{strict, only});
      m.broken.clear();
      m.eval_ex.reset();
      return LoadReport{r.loaded, r.not_in_model, r.shape_mismatch, r.not_in_file, r.excluded};
    } catch (const std::exception& e) {
      m.broken = std::string("loading ") + path + " failed: " + e.what();
      throw;
    }
  });
}

void Model::save(const std::string& path) const {
  guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    const Impl& m = *impl_;
    CheckpointInfo info;
    info.step = m.step;
    const std::vector<ParamSegment> none;
    save_checkpoint(path, *m.model, m.optimizer.get(), m.train_ex ? m.train_ex->trainable_segments() : none, info);
  });
}

void Model::freeze(const std::vector<std::string>& patterns) {
  guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    const auto selected = resolve_freeze_patterns(*m.model, patterns);
    for (size_t n = 0; n < selected.size(); ++n) m.frozen[n] = m.frozen[n] || selected[n];
    m.new_stage();
  });
}

void Model::unfreeze(const std::vector<std::string>& patterns) {
  guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    for (const auto& p : patterns) {
      const auto selected = select_nodes(*m.model, p, "unfreeze");
      bool any = false;
      for (size_t n = 0; n < selected.size(); ++n)
        if (selected[n]) {
          any = true;
          m.frozen[n] = false;
        }
      if (!any) fail("unfreeze: the pattern '", p, "' selects no layer of ", m.model->architecture());
    }
    m.new_stage();
  });
}

std::vector<std::string> Model::frozen_layers() const {
  std::vector<std::string> names;
  for (int n = 0; n < impl_->model->num_nodes(); ++n)
    if (impl_->frozen[size_t(n)]) names.push_back(impl_->model->nodes()[size_t(n)].name);
  return names;
}

void Model::set_batchnorm_policy(const std::string& pattern, BatchNormPolicy policy) {
  guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    (void)select_nodes(*m.model, pattern, "set_batchnorm_policy");  // an unknown range end is named now
    m.bn_overrides.emplace_back(pattern, internal_policy(policy));
    m.new_stage();
  });
}

void Model::configure(const TrainSettings& settings) {
  guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    m.check_settings(settings);
    m.settings = settings;
    m.new_stage();
  });
}

StepResult Model::train_step(const Batch& batch) {
  return guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    m.check_usable();
    Executor& ex = m.trainer();
    const int64_t n = m.stage(ex, batch, true, "train_step");
    ex.forward_backward(n, m.step, nullptr);
    const double loss = ex.last_batch_loss();
    std::string bad;
    if (!std::isfinite(loss) || !ex.gradients_finite(&bad))
      fail("train_step ", m.step + 1, ": the loss or a gradient became non-finite",
           bad.empty() ? std::string() : " (the first non-finite gradient is " + bad + "'s)",
           "; the parameters were not updated. Try a lower learning rate");
    const double lr = learning_rate_at(m.schedule, m.step);
    m.optimizer->step(ex.trainable_segments(), static_cast<float>(lr));
    ++m.step;
    return StepResult{loss, m.step, lr};
  });
}

void Model::forward(const Batch& batch, float* logits, Memory logits_memory) {
  guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    m.check_usable();
    if (!logits) fail("forward: logits is null; pass room for n * ", m.model->num_outputs(), " floats");
    Executor& ex = m.evaluator();
    const int64_t n = m.stage(ex, batch, false, "forward");
    ex.forward(n, false, 0);
    const size_t bytes = size_t(n) * size_t(m.model->num_outputs()) * sizeof(float);
    if (logits_memory == Memory::Device)
      api_detail::host_to_device(logits, ex.output(), bytes, batch.stream, "forward: logits");
    else
      std::memcpy(logits, ex.output(), bytes);
  });
}

Metrics Model::evaluate(const Batch& batch) {
  return guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    m.check_usable();
    Executor& ex = m.evaluator();
    const int64_t n = m.stage(ex, batch, true, "evaluate");
    ex.forward(n, false, 0);
    ex.reset_metrics();
    ex.accumulate_metrics(n);
    const graft::Metrics r = ex.read_metrics();
    return Metrics{r.loss(), r.accuracy(), static_cast<int64_t>(r.count)};
  });
}

MemoryPlan Model::planned_memory() {
  return guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    Impl& m = *impl_;
    m.check_usable();
    const PlanSummary& p = m.trainer().plan();
    return MemoryPlan{p.parameter_bytes, p.gradient_bytes, p.optimizer_bytes, p.arena_bytes,
                      p.workspace_bytes, p.io_bytes,       p.peak_bytes()};
  });
}

int Model::classes() const { return impl_->model->num_outputs(); }

std::vector<int64_t> Model::input_shape() const { return impl_->spec.input; }

std::vector<std::string> Model::parameter_names() const {
  std::vector<std::string> names;
  for (const auto& p : impl_->model->params()) names.push_back(p.name);
  return names;
}

std::vector<float> Model::parameter(const std::string& name) const {
  return guarded([&] {
    const auto turn = device_turn(impl_->spec.device);
    const graft::Model& model = *impl_->model;
    for (size_t p = 0; p < model.params().size(); ++p) {
      const ParamInfo& info = model.params()[p];
      if (info.name != name) continue;
      std::vector<float> out(size_t(info.spec.checkpoint_shape.numel()));
      model.nodes()[size_t(info.node)].layer->to_checkpoint_layout(info.index, model.host_params() + info.offset,
                                                                   out.data());
      return out;
    }
    fail("parameter '", name, "' is not in the model ", model.architecture(), " (parameter_names() lists them)");
  });
}

std::vector<int64_t> Model::parameter_shape(const std::string& name) const {
  return guarded([&] {
    const graft::Model& model = *impl_->model;
    for (const ParamInfo& info : model.params())
      if (info.name == name) return info.spec.checkpoint_shape.dims;
    fail("parameter '", name, "' is not in the model ", model.architecture(), " (parameter_names() lists them)");
  });
}

int64_t Model::step() const { return impl_->step; }

}  // namespace graft::api
