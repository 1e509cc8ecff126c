// The public C++ API (include/graft/graft.hpp): the same parameters as `graft train` after
// the same steps, bit for bit; freezing; uint8 input; and every caller mistake a named
// graft::api::Error, never a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "graft/graft.hpp"
#include "runtime/batch_source.h"
#include "runtime/dataset.h"
#include "runtime/safetensors.h"
#include "runtime/sequence_file.h"
#include "tests/graft_program.h"
#include "tests/idx_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

// Runs `f` and expects a graft::api::Error whose message holds every one of `needles`.
template <typename F>
void expect_api_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming " << needles.front();
  } catch (const api::Error& e) {
    for (const auto& n : needles) EXPECT_TRUE(testing::has(e.what(), n)) << "'" << n << "' not in: " << e.what();
  }
}

// A random labelled batch for fmnist_cnn's 28x28x1 input.
struct RandomBatch {
  std::vector<float> images;
  std::vector<int32_t> labels;
  api::Batch batch;
  RandomBatch(int64_t n, int classes) : images(testing::random_floats(size_t(n) * 28 * 28, 0.0f, 1.0f)) {
    for (int64_t i = 0; i < n; ++i) labels.push_back(testing::random_int(0, classes - 1));
    batch.images = images.data();
    batch.labels = labels.data();
    batch.shape = {n, 28, 28, 1};
  }
};

TEST(Api, TrainStepsReachTheParametersOfGraftTrainBitForBit) {
  testing::TempDir dir;
  const int examples = testing::random_int(20, 60);
  const int batch = testing::random_int(4, 12);
  const uint64_t seed = testing::test_seed() % 100000;
  std::vector<uint8_t> pixels(size_t(examples) * 28 * 28), labels(static_cast<size_t>(examples));
  for (auto& p : pixels) p = static_cast<uint8_t>(testing::random_int(0, 255));
  for (auto& l : labels) l = static_cast<uint8_t>(testing::random_int(0, 9));
  testing::write_plain(dir.file("train-images-idx3-ubyte"), testing::idx_bytes({uint32_t(examples), 28, 28}, pixels));
  testing::write_plain(dir.file("train-labels-idx1-ubyte"), testing::idx_bytes({uint32_t(examples)}, labels));
  const bool sgd = testing::random_int(0, 1) == 1;
  const std::string head = "flatten,dense:32,relu,dense:N";

  const auto cli = testing::run_graft(
      "train --device cpu --model fmnist_cnn --data-dir '" + dir.str() + "' --head " + head +
      " --freeze 'conv*' --epochs 1 --batch " + std::to_string(batch) + " --seed " + std::to_string(seed) +
      (sgd ? " --optimizer sgd --momentum 0.9 --lr 0.05" : " --optimizer adam --lr 0.002") +
      " --cache-features off --frozen-chunk off --progress off --save '" + dir.file("cli.safetensors") + "'");
  ASSERT_EQ(cli.status, 0) << cli.output;

  api::ModelSpec spec;
  spec.architecture = "fmnist_cnn";
  spec.input = {28, 28, 1};
  spec.classes = 10;
  spec.head = head;
  spec.seed = seed;
  api::Model model(spec);
  model.freeze({"conv*"});
  api::TrainSettings settings;
  settings.batch = batch;
  settings.optimizer.kind = sgd ? "sgd" : "adam";
  settings.optimizer.lr = sgd ? 0.05f : 0.002f;
  settings.optimizer.momentum = sgd ? 0.9f : 0.0f;
  model.configure(settings);

  // The batches graft train reads: the same data, seed and epoch order.
  InMemorySource source(load_fashion_mnist(dir.str(), true));
  source.start_epoch(seed, 1, /*shuffle=*/true, /*augment=*/false, 0);
  std::vector<float> images(size_t(batch) * 28 * 28);
  std::vector<int32_t> batch_labels(static_cast<size_t>(batch));
  int64_t steps = 0;
  for (int64_t n; (n = source.next_batch(batch, images.data(), batch_labels.data())) > 0;) {
    api::Batch b;
    b.images = images.data();
    b.labels = batch_labels.data();
    b.shape = {n, 28, 28, 1};
    const api::StepResult r = model.train_step(b);
    EXPECT_EQ(r.step, ++steps);
    EXPECT_TRUE(std::isfinite(r.loss));
  }
  ASSERT_EQ(steps, (examples + batch - 1) / batch);
  model.save(dir.file("api.safetensors"));

  const auto a = read_safetensors(dir.file("cli.safetensors"));
  const auto b = read_safetensors(dir.file("api.safetensors"));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name << " is not in the API's checkpoint";
    EXPECT_EQ(t.shape, b.tensors.at(name).shape) << name;
    EXPECT_TRUE(t.bytes == b.tensors.at(name).bytes) << name << " differs from graft train's";
  }
  // parameter() reads what save() wrote.
  const auto fc = model.parameter("head.1.weight");
  EXPECT_EQ(0, std::memcmp(fc.data(), a.tensors.at("head.1.weight").bytes.data(), fc.size() * sizeof(float)));
}

TEST(Api, FrozenLayersStayBitwiseAndTheLossFalls) {
  api::ModelSpec spec;
  spec.classes = testing::random_int(2, 5);
  spec.head = "flatten,dense:16,relu,dense:N";
  spec.seed = testing::test_seed();
  api::Model model(spec);
  model.freeze({"conv*"});
  EXPECT_EQ(model.frozen_layers(), (std::vector<std::string>{"conv1", "conv2"}));
  api::TrainSettings s;
  s.batch = 16;
  s.optimizer.lr = 2e-3f;  // higher rates can kill the head's ReLUs on a batch this small
  model.configure(s);
  RandomBatch data(16, spec.classes);
  // Learnable through a frozen random base: each class a brightness of its own under the noise.
  for (size_t i = 0; i < 16; ++i)
    for (size_t k = 0; k < 28 * 28; ++k) data.images[i * 28 * 28 + k] += 0.5f * float(data.labels[i]);
  const auto conv_before = model.parameter("conv1.weight");
  // Adam's first step moves every weight by about lr (its sign): measure from the second.
  model.train_step(data.batch);
  const double second = model.train_step(data.batch).loss;
  double last = second;
  std::string losses;
  for (int i = 0; i < 60; ++i) losses += " " + std::to_string(last = model.train_step(data.batch).loss);
  EXPECT_LT(last, second * 0.8) << "memorising one batch, from " << second << ":" << losses;
  EXPECT_EQ(model.parameter("conv1.weight"), conv_before);
  const api::MemoryPlan plan = model.planned_memory();
  EXPECT_GT(plan.parameters, 0u);
  EXPECT_GE(plan.peak, plan.parameters + plan.gradients + plan.activations);

  // Forward agrees with evaluate's accuracy on the same batch.
  std::vector<float> logits(size_t(16) * size_t(spec.classes));
  model.forward(data.batch, logits.data());
  int correct = 0;
  for (int i = 0; i < 16; ++i) {
    const float* row = logits.data() + i * spec.classes;
    correct += int(std::max_element(row, row + spec.classes) - row) == data.labels[size_t(i)];
  }
  const api::Metrics m = model.evaluate(data.batch);
  EXPECT_EQ(m.examples, 16);
  EXPECT_DOUBLE_EQ(m.accuracy, correct / 16.0);

  // Unfreezing starts a new stage: conv2 then trains.
  model.unfreeze({"conv2"});
  EXPECT_EQ(model.step(), 0);
  const auto conv2 = model.parameter("conv2.weight");
  model.train_step(data.batch);
  EXPECT_NE(model.parameter("conv2.weight"), conv2);
  EXPECT_EQ(model.parameter("conv1.weight"), conv_before);
}

TEST(Api, Uint8BatchesAreNormalizedAsTheirFloats) {
  api::ModelSpec spec;
  spec.seed = testing::test_seed();
  api::Model model(spec);
  const int64_t n = testing::random_int(1, 8);
  std::vector<uint8_t> px(size_t(n) * 28 * 28);
  for (auto& p : px) p = uint8_t(testing::random_int(0, 255));
  std::vector<float> as_float(px.size());
  for (size_t i = 0; i < px.size(); ++i) as_float[i] = float(px[i]) * (1.0f / 255.0f);  // the unit preset: x * scale
  api::Batch u8;
  u8.images = px.data();
  u8.uint8 = true;
  u8.shape = {n, 28, 28, 1};
  api::Batch f32 = u8;
  f32.images = as_float.data();
  f32.uint8 = false;
  std::vector<float> a(size_t(n) * 10), b(size_t(n) * 10);
  model.forward(u8, a.data());
  model.forward(f32, b.data());
  EXPECT_EQ(a, b);
  u8.normalize = api::Normalize::Imagenet;
  expect_api_error([&] { model.forward(u8, a.data()); }, {"forward", "imagenet", "RGB", "1 channels"});
}

TEST(Api, MistakesAreNamedErrors) {
  expect_api_error([] { api::Model(api::ModelSpec{.architecture = "vgg17"}); }, {"vgg17", "vgg16"});
  expect_api_error([] { api::Model(api::ModelSpec{.head = "flatten,dense:x"}); }, {"dense:x"});
  expect_api_error([] { api::Model(api::ModelSpec{.input = {28, 28}}); }, {"ModelSpec::input", "{H, W, C}"});

  api::ModelSpec spec;
  spec.seed = testing::test_seed();
  api::Model model(spec);
  api::TrainSettings s;
  s.batch = 8;
  model.configure(s);
  RandomBatch data(8, 10);
  std::vector<float> logits(80);

  api::Batch wrong = data.batch;
  wrong.shape = {8, 28, 27, 1};
  expect_api_error([&] { model.train_step(wrong); }, {"train_step", "[8, 28, 27, 1]", "[8, 28, 28, 1]"});
  wrong.shape = {8, 784};
  expect_api_error([&] { model.forward(wrong, logits.data()); }, {"forward", "{n, H, W, C}"});
  RandomBatch too_many(9, 10);
  expect_api_error([&] { model.train_step(too_many.batch); }, {"9 examples", "TrainSettings::batch 8"});
  wrong = data.batch;
  wrong.images = nullptr;
  expect_api_error([&] { model.train_step(wrong); }, {"Batch::images is null"});
  wrong = data.batch;
  wrong.labels = nullptr;
  expect_api_error([&] { model.train_step(wrong); }, {"Batch::labels is null"});
  expect_api_error([&] { model.forward(data.batch, nullptr); }, {"logits is null"});
  wrong = data.batch;
  const int bad_at = testing::random_int(0, 7);
  data.labels[size_t(bad_at)] = 10;
  expect_api_error([&] { model.train_step(wrong); }, {"label 10", "example " + std::to_string(bad_at), "0..9"});
  data.labels[size_t(bad_at)] = 0;
  expect_api_error([&] { model.freeze({"nosuch*"}); }, {"nosuch*"});
  api::TrainSettings bad = s;
  bad.optimizer.kind = "adagrad";
  model.configure(bad);
  expect_api_error([&] { model.train_step(data.batch); }, {"adagrad"});
  bad = s;
  bad.batch = 0;
  expect_api_error([&] { model.configure(bad); }, {"TrainSettings::batch", "0"});
  model.configure(s);
  expect_api_error([&] { (void)model.parameter("fc9.weight"); }, {"fc9.weight"});

  // Device memory: named both on a CPU-only build and on a CPU model's host pointer.
  api::Batch on_device = data.batch;
  on_device.memory = api::Memory::Device;
  expect_api_error([&] { model.train_step(on_device); }, {"train_step: Batch::images", "device memory"});
}

// Sequence models by spec through the API: lengths say which rows of each example are real;
// what the padding holds changes nothing, and without lengths it is read as steps.
TEST(Api, SequenceModelsReadLengthsAndIgnoreThePadding) {
  const bool gru = testing::random_int(0, 1) == 1;
  const int64_t steps = testing::random_int(3, 7), features = testing::random_int(2, 5), n = testing::random_int(2, 6);
  const int classes = testing::random_int(2, 5);
  api::ModelSpec spec;
  spec.architecture = std::string(gru ? "gru:6,bi,mean" : "lstm:6x2,last") + ",dense:N";
  spec.input = {steps, features};
  spec.classes = classes;
  spec.seed = testing::test_seed();
  api::Model model(spec);
  EXPECT_EQ(model.input_shape(), spec.input);
  api::TrainSettings s;
  s.batch = n;
  model.configure(s);

  auto x = testing::random_floats(size_t(n * steps * features));
  std::vector<int32_t> lengths, labels;
  for (int64_t i = 0; i < n; ++i) {
    lengths.push_back(int32_t(i == 0 ? steps - 1 : testing::random_int(1, int(steps))));  // one shorter at least
    labels.push_back(testing::random_int(0, classes - 1));
  }
  api::Batch batch{.images = x.data(), .labels = labels.data(), .shape = {n, steps, features}};
  batch.lengths = lengths.data();
  std::vector<float> a(size_t(n * classes)), b(a.size()), c(a.size());
  model.forward(batch, a.data());
  for (int64_t i = 0; i < n; ++i)  // other values in every padded row
    for (int64_t t = lengths[size_t(i)]; t < steps; ++t)
      for (int64_t f = 0; f < features; ++f) x[size_t((i * steps + t) * features + f)] += 1.0f + float(f);
  model.forward(batch, b.data());
  EXPECT_EQ(a, b) << spec.architecture << ": the padding changed the logits";
  batch.lengths = nullptr;
  model.forward(batch, c.data());
  EXPECT_NE(std::vector<float>(a.begin(), a.begin() + classes), std::vector<float>(c.begin(), c.begin() + classes))
      << spec.architecture << ": without lengths the first example's padded step must count";

  batch.lengths = lengths.data();
  const double first = model.train_step(batch).loss;
  double last = first;
  for (int i = 0; i < 30; ++i) last = model.train_step(batch).loss;
  EXPECT_LT(last, first) << spec.architecture;

  std::vector<int32_t> wrong = lengths;
  const int at = testing::random_int(0, int(n) - 1);
  wrong[size_t(at)] = testing::random_int(0, 1) ? 0 : int32_t(steps + 1);
  batch.lengths = wrong.data();
  expect_api_error([&] { model.train_step(batch); },
                   {"Batch::lengths[" + std::to_string(at) + "]", "1 to " + std::to_string(steps)});
  spec.input = {};
  expect_api_error([&] { api::Model m(spec); }, {"ModelSpec::input", "{steps, features}"});
}

// A sequence file with sequences of different lengths: graft train and the API's train_step
// on the same batches and lengths reach the same parameters, bit for bit; so graft train hands
// every batch's lengths to the model (were it to drop them, the padding would count).
TEST(Api, SequenceFileTrainingReachesTheParametersOfGraftTrainBitForBit) {
  testing::TempDir dir;
  const int examples = testing::random_int(15, 40), batch = testing::random_int(3, 8);
  const int features = testing::random_int(1, 4), longest = testing::random_int(3, 8), classes = 3;
  const uint64_t seed = testing::test_seed() % 100000;
  std::string text;
  for (int i = 0; i < examples; ++i) {
    const int len = i == 0 ? longest : testing::random_int(1, longest);
    text += std::to_string(i < classes ? i : testing::random_int(0, classes - 1)) + "\t";
    for (int t = 0; t < len; ++t)
      for (int f = 0; f < features; ++f)
        text += std::to_string(testing::random_int(-99, 99) / 50.0) + (f + 1 < features ? "," : t + 1 < len ? ";" : "\n");
  }
  testing::write_plain(dir.file("train.seq"), std::vector<uint8_t>(text.begin(), text.end()));
  const std::string arch = testing::random_int(0, 1) ? "lstm:6,bi,last,dense:N" : "gru:5x2,mean,dense:N";
  const auto cli = testing::run_graft("train --device cpu --model '" + arch + "' --data '" + dir.file("train.seq") +
                                      "' --epochs 1 --batch " + std::to_string(batch) + " --seed " +
                                      std::to_string(seed) + " --optimizer adam --lr 0.01 --progress off --save '" +
                                      dir.file("cli.safetensors") + "'");
  ASSERT_EQ(cli.status, 0) << cli.output;

  InMemorySource source(read_sequence_file(dir.file("train.seq")).data);
  ASSERT_EQ(source.sample_shape(), (Shape{longest, features}));
  api::ModelSpec spec;
  spec.architecture = arch;
  spec.input = {longest, features};
  spec.classes = classes;
  spec.seed = seed;
  api::Model model(spec);
  api::TrainSettings settings;
  settings.batch = batch;
  settings.optimizer.lr = 0.01f;
  model.configure(settings);
  source.start_epoch(seed, 1, /*shuffle=*/true, /*augment=*/false, 0);
  std::vector<float> x(size_t(batch) * size_t(longest * features));
  std::vector<int32_t> y(static_cast<size_t>(batch));
  bool shorter = false;
  for (int64_t n; (n = source.next_batch(batch, x.data(), y.data())) > 0;) {
    api::Batch b{.images = x.data(), .labels = y.data(), .shape = {n, longest, features}};
    b.lengths = source.batch_lengths();
    for (int64_t i = 0; b.lengths && i < n; ++i) shorter = shorter || b.lengths[i] < longest;
    EXPECT_TRUE(std::isfinite(model.train_step(b).loss));
  }
  model.save(dir.file("api.safetensors"));
  const auto a = read_safetensors(dir.file("cli.safetensors"));
  const auto b = read_safetensors(dir.file("api.safetensors"));
  for (const auto& [name, t] : b.tensors) {
    ASSERT_TRUE(a.tensors.count(name)) << name << " is not in graft train's checkpoint";
    EXPECT_TRUE(t.bytes == a.tensors.at(name).bytes) << name << " differs from graft train's (" << arch << ")";
  }
  EXPECT_TRUE(shorter || examples == 1) << "no batch had a shorter sequence: the test checked nothing of lengths";
}

TEST(Api, AModelAfterAFailedLoadRefusesToRunUntilALoadSucceeds) {
  testing::TempDir dir;
  api::ModelSpec spec;
  spec.seed = testing::test_seed();
  api::Model model(spec);
  model.save(dir.file("good.safetensors"));
  expect_api_error([&] { model.load(dir.file("missing.safetensors")); }, {"missing.safetensors"});
  {  // a truncated file
    auto bytes = testing::read_bytes(dir.file("good.safetensors"));
    bytes.resize(bytes.size() / 2);
    testing::write_plain(dir.file("cut.safetensors"), bytes);
  }
  expect_api_error([&] { model.load(dir.file("cut.safetensors")); }, {"cut.safetensors"});
  RandomBatch data(4, 10);
  std::vector<float> logits(40);
  expect_api_error([&] { model.forward(data.batch, logits.data()); }, {"cannot be used", "cut.safetensors"});
  expect_api_error([&] { model.train_step(data.batch); }, {"cannot be used"});
  const api::LoadReport r = model.load(dir.file("good.safetensors"), /*strict=*/true);
  EXPECT_EQ(r.loaded.size(), model.parameter_names().size());
  model.forward(data.batch, logits.data());  // usable again
  api::ModelSpec other = spec;
  other.classes = 5;
  api::Model five(other);
  expect_api_error([&] { five.load(dir.file("good.safetensors"), /*strict=*/true); }, {"fc2.weight"});
  const api::LoadReport loose = five.load(dir.file("good.safetensors"));
  EXPECT_FALSE(loose.shape_mismatch.empty());
}

}  // namespace
}  // namespace graft
