// The runtime's device paths on a stand-in device (tests/deferred_device.h: the CPU kernels
// queued until the host waits, batches staged in two "pinned" buffers uploaded when the queue
// runs, poisoned device memory): training and evaluation there give the CPU backend's bits.
// What this catches without a GPU: a host read of a device result before the wait, a staging
// buffer read after forward() handed it over (the feature cache's and graft eval's labels did:
// one batch late, the first from memory never written), state kept on the wrong side.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "graft/graft.hpp"
#include "layers/zoo.h"
#include "runtime/batch_source.h"
#include "runtime/evaluation.h"
#include "runtime/image_folder.h"
#include "runtime/trainer.h"
#include "tests/deferred_device.h"
#include "tests/image_writing.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft::testing {
namespace {

std::unique_ptr<Model> small_model(MemoryPool& pool, const std::string& head, int classes, uint64_t seed) {
  return build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = classes,
                               .seed = seed, .head = head},
                     pool);
}

struct TrainedRun {
  std::vector<float> params;
  std::vector<double> losses, val_losses;
};

TrainedRun train_on(MemoryPool& pool, const std::string& head, const Dataset& train_data, const Dataset& val_data,
             const TrainOptions& base, uint64_t seed) {
  auto model = small_model(pool, head, int(train_data.class_names.size()), seed);
  TrainOptions t = base;
  t.frozen = resolve_freeze_patterns(*model, {"conv1"});
  InMemorySource train_source(train_data), val_source(val_data);
  std::ostringstream log;
  TrainedRun r;
  for (const EpochReport& e : train(*model, train_source, &val_source, t, log)) {
    r.losses.push_back(e.train.loss());
    r.val_losses.push_back(e.validation ? e.validation->loss() : -1.0);
  }
  r.params = params(*model);
  return r;
}

struct Case {
  const char* name;
  bool dropout;
  std::function<void(TrainOptions&)> set;
};

// SGD with momentum, the finite checks deferred to every `steps` steps (--sync-every).
std::function<void(TrainOptions&)> sgd_syncing_every(int steps) {
  return [steps](TrainOptions& t) {
    t.optimizer.kind = "sgd";
    t.optimizer.momentum = 0.9f;
    t.optimizer.lr = 0.05f;
    t.sync_every = steps;
  };
}

TEST(DeferredDevice, TrainingGivesTheCpuBits) {
  const std::string plain = "flatten,dense:16,relu,dense:N", with_dropout = "flatten,dense:16,relu,dropout:0.5,dense:N";
  const int classes = random_int(2, 5);
  const Dataset train_data = random_dataset(random_int(30, 60), classes), val_data = random_dataset(random_int(9, 25), classes);
  const uint64_t seed = uint64_t(random_int(1, 1000));
  const int64_t batch = random_int(4, 9);
  TempDir dir;
  {  // a 2-epoch checkpoint (the CPU's) that both sides resume
    TrainOptions t;
    t.epochs = 2;
    t.batch = batch;
    t.seed = seed;
    t.cache_features = FeatureCacheMode::Off;
    t.save_path = (dir.path / "two-epochs.safetensors").string();
    HostPool host;
    train_on(host, with_dropout, train_data, val_data, t, seed);
  }
  const std::vector<Case> cases = {
      {"plain", false, [](TrainOptions&) {}},
      {"dropout", true, [](TrainOptions&) {}},
      {"feature cache", false, [](TrainOptions& t) { t.cache_features = FeatureCacheMode::On; }},
      {"gradient accumulation 2", false, [](TrainOptions& t) { t.grad_accumulation = 2; }},
      {"frozen chunks of 3", false, [](TrainOptions& t) { t.frozen_chunk = {PrefixChunkMode::Examples, 3}; }},
      {"check finite", true, [](TrainOptions& t) { t.check_finite = true; }},
      {"sgd, sync every step", true, sgd_syncing_every(1)},
      {"sgd, sync every 3", true, sgd_syncing_every(3)},
      {"restore best, save", true, [&](TrainOptions& t) {
         t.restore_best = true;
         t.save_path = (dir.path / "best.safetensors").string();
       }},
      {"resume", true, [&](TrainOptions& t) {
         t.resume_path = (dir.path / "two-epochs.safetensors").string();
         t.epochs = 4;
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TrainOptions t;
    t.epochs = 3;
    t.batch = batch;
    t.seed = seed;
    t.cache_features = FeatureCacheMode::Off;
    c.set(t);
    const std::string head = c.dropout ? with_dropout : plain;
    HostPool host;
    const TrainedRun cpu = train_on(host, head, train_data, val_data, t, seed);
    DeferredDevice device;
    DeferredDevicePool device_pool;
    const TrainedRun dev = train_on(device_pool, head, train_data, val_data, t, seed);
    EXPECT_EQ(dev.losses, cpu.losses);
    EXPECT_EQ(dev.val_losses, cpu.val_losses);
    EXPECT_EQ(dev.params, cpu.params) << first_difference(dev.params, cpu.params);
  }
}

// Sequences: per-batch lengths staged on the host and uploaded with the batch, an LSTM
// stacked and bidirectional under a mean pool, its lower layer frozen.
TEST(DeferredDevice, SequenceTrainingGivesTheCpuBits) {
  const int classes = random_int(2, 4), steps = random_int(3, 7), features = random_int(2, 5);
  const int64_t n = random_int(20, 40);
  Dataset data;
  data.images = HostTensor(Shape{n, steps, features}, random_floats(size_t(n) * size_t(steps * features)));
  for (int64_t i = 0; i < n; ++i) {
    data.labels.push_back(random_int(0, classes - 1));
    data.lengths.push_back(random_int(1, steps));
    for (int t = data.lengths.back(); t < steps; ++t)  // padding is zero, as a sequence file's
      for (int f = 0; f < features; ++f) data.images.values[size_t((i * steps + t) * features + f)] = 0.0f;
  }
  for (int c = 0; c < classes; ++c) data.class_names.push_back("c" + std::to_string(c));
  data.origin = "random sequences";
  const uint64_t seed = uint64_t(random_int(1, 1000));
  const int64_t batch = random_int(3, 7);
  SCOPED_TRACE(std::to_string(n) + " sequences of up to " + std::to_string(steps) + " steps of " +
               std::to_string(features) + ", batch " + std::to_string(batch));
  auto run = [&](MemoryPool& pool) {
    auto model = build_model(ModelSpec{.architecture = "lstm:6x2,bi,mean,dense:N", .sample_shape = Shape{steps, features},
                                       .num_classes = classes, .seed = seed},
                             pool);
    TrainOptions t;
    t.epochs = 2;
    t.batch = batch;
    t.seed = seed;
    t.cache_features = FeatureCacheMode::Off;
    InMemorySource source(data);
    std::ostringstream log;
    std::vector<double> losses;
    for (const EpochReport& e : train(*model, source, nullptr, t, log)) losses.push_back(e.train.loss());
    return std::make_pair(losses, params(*model));
  };
  HostPool host;
  const auto cpu = run(host);
  DeferredDevice device;
  DeferredDevicePool device_pool;
  const auto dev = run(device_pool);
  EXPECT_EQ(dev.first, cpu.first);
  EXPECT_EQ(dev.second, cpu.second) << first_difference(dev.second, cpu.second);
}

// --augment-on device: uint8 images and each example's warp staged in the pinned buffers,
// augmented by the backend in the step, give the CPU's training bits.
TEST(DeferredDevice, AugmentingInTheStepGivesTheCpuBits) {
  TempDir dir;
  const auto root = dir.path / "images";
  write_image_folder(root, {"a", "b", "c"}, random_int(3, 5), 12, 40, /*jpeg=*/true);
  ImageFolderOptions o;
  o.height = 14;
  o.width = 18;
  o.augment.normalize = Normalization::preset("imagenet");
  o.augment.rotation_range = 20;
  o.augment.zoom_range = 0.2f;
  o.augment.horizontal_flip = true;
  const uint64_t seed = uint64_t(random_int(1, 1000));
  auto run = [&](MemoryPool& pool, TrainOptions::AugmentOn where) {
    ImageFolderSource data(root.string(), o);
    auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = data.sample_shape(), .num_classes = 3,
                                   .seed = seed},
                         pool);
    TrainOptions t;
    t.epochs = 2;
    t.batch = 4;
    t.seed = seed;
    t.augment = true;
    t.augment_on = where;
    std::ostringstream log;
    const auto reports = train(*m, data, nullptr, t, log);
    return std::make_pair(reports.back().train.loss_sum, params(*m));
  };
  HostPool host;
  const auto cpu = run(host, TrainOptions::AugmentOn::Cpu);
  DeferredDevice device;
  DeferredDevicePool device_pool;
  const auto dev = run(device_pool, TrainOptions::AugmentOn::Device);
  EXPECT_EQ(dev.first, cpu.first);
  EXPECT_EQ(dev.second, cpu.second) << first_difference(dev.second, cpu.second);
}

// The public API's CUDA models (what an HPC pipeline links) on the stand-in: train_step,
// evaluate, forward and parameter() give the CPU model's bits, and a checkpoint saved from
// the device loads into a CPU model with the same logits.
TEST(DeferredDevice, ApiModelsGiveTheCpuBits) {
  DeferredDevice device;
  TempDir dir;
  const int classes = random_int(2, 5);
  const int64_t n = random_int(2, 9);
  api::ModelSpec spec;
  spec.classes = classes;
  spec.head = "flatten,dense:16,relu,dropout:0.3,dense:N";
  spec.seed = uint64_t(random_int(1, 1000));
  api::Model on_cpu(spec);
  spec.device = api::Device::Cuda;
  api::Model on_device(spec);
  api::TrainSettings settings;
  settings.batch = n;
  settings.optimizer.lr = 0.01f;
  for (api::Model* m : {&on_cpu, &on_device}) {
    m->freeze({"conv1"});
    m->configure(settings);
  }
  std::vector<float> x;
  std::vector<int32_t> y;
  auto next_batch = [&] {
    x = random_floats(size_t(n) * 28 * 28, 0.0f, 1.0f);
    y.clear();
    for (int64_t i = 0; i < n; ++i) y.push_back(random_int(0, classes - 1));
    return api::Batch{.images = x.data(), .labels = y.data(), .shape = {n, 28, 28, 1}};
  };
  for (int step = 0; step < 4; ++step) {
    const api::Batch b = next_batch();
    EXPECT_EQ(on_device.train_step(b).loss, on_cpu.train_step(b).loss) << "step " << step;
  }
  const api::Batch b = next_batch();
  const api::Metrics mc = on_cpu.evaluate(b), md = on_device.evaluate(b);
  EXPECT_EQ(md.loss, mc.loss);
  EXPECT_EQ(md.accuracy, mc.accuracy);
  EXPECT_EQ(md.examples, mc.examples);
  std::vector<float> logits_cpu(size_t(n) * size_t(classes)), logits_device(logits_cpu.size());
  on_cpu.forward(b, logits_cpu.data());
  on_device.forward(b, logits_device.data());
  EXPECT_EQ(logits_device, logits_cpu);
  EXPECT_EQ(on_device.parameter("head.1.weight"), on_cpu.parameter("head.1.weight"));
  const std::string path = (dir.path / "device.safetensors").string();
  on_device.save(path);
  spec.device = api::Device::Cpu;
  api::Model loaded(spec);
  loaded.load(path);
  std::vector<float> logits_loaded(logits_cpu.size());
  loaded.forward(b, logits_loaded.data());
  EXPECT_EQ(logits_loaded, logits_device);
}

// graft eval's report (per-class counts, confusion, top-5) from the stand-in device equals
// the CPU's, and both equal the labels' own counts.
TEST(DeferredDevice, DetailedEvaluationGivesTheCpuReport) {
  const int classes = random_int(3, 6);
  const Dataset data = random_dataset(random_int(20, 50), classes);
  const uint64_t seed = uint64_t(random_int(1, 1000));
  const int64_t batch = random_int(3, 8);
  HostPool host;
  auto cpu_model = small_model(host, "flatten,dense:N", classes, seed);
  InMemorySource cpu_source(data);
  const EvaluationReport cpu = evaluate_detailed(*cpu_model, cpu_source, batch, LossKind::CrossEntropy);
  DeferredDevice device;
  DeferredDevicePool device_pool;
  auto dev_model = small_model(device_pool, "flatten,dense:N", classes, seed);
  InMemorySource dev_source(data);
  const EvaluationReport dev = evaluate_detailed(*dev_model, dev_source, batch, LossKind::CrossEntropy);
  std::vector<int64_t> counts(size_t(classes), 0);
  for (int32_t label : data.labels) ++counts[size_t(label)];
  EXPECT_EQ(cpu.per_class_count, counts);
  EXPECT_EQ(dev.per_class_count, counts);
  EXPECT_EQ(dev.confusion, cpu.confusion);
  EXPECT_EQ(dev.loss, cpu.loss);
  EXPECT_EQ(dev.top1, cpu.top1);
  EXPECT_EQ(dev.top5, cpu.top5);
}

}  // namespace
}  // namespace graft::testing
