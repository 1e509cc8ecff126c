// TensorBoard event files (runtime/event_file.h, runtime/tensorboard.h) and what a training
// run writes into them (runtime/training_tensorboard.cpp), read back with the PyPI
// tensorboard package's EventAccumulator (tests/interop/read_tensorboard.py); the CRC and
// framing against independent references; an unwritable folder and a full disk.
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "layers/zoo.h"
#include "runtime/evaluation.h"
#include "runtime/event_file.h"
#include "runtime/memory_pool.h"
#include "runtime/tensorboard.h"
#include "runtime/trainer.h"
#include "tests/python_env.h"
#include "tests/testing.h"
#include "tests/training.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::random_dataset;
using testing::random_int;
using testing::TempDir;

// The CRC bit by bit, as its definition reads.
uint32_t bitwise_crc32c(const std::string& s) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : s) {
    crc ^= ch;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string random_bytes(size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(random_int(0, 255));
  return s;
}

uint64_t read_le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(static_cast<unsigned char>(s[at + size_t(i)])) << (8 * i);
  return v;
}

nlohmann::json read_board(const std::string& dir) {
  const auto r = testing::run_python(std::string(GRAFT_FIXTURE_DIR) + "/../interop/read_tensorboard.py", dir);
  EXPECT_EQ(r.status, 0) << r.output;
  try {
    return nlohmann::json::parse(r.output);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "read_tensorboard.py printed no JSON: " << r.output;
    return {};
  }
}

TEST(TensorBoard, Crc32cMatchesTheCheckValueAndABitwiseReference) {
  EXPECT_EQ(tb::crc32c("123456789", 9), 0xE3069283u);  // CRC-32C's standard check value
  for (int trial = 0; trial < 50; ++trial) {
    const std::string a = random_bytes(size_t(random_int(0, 300))), b = random_bytes(size_t(random_int(0, 300)));
    const std::string ab = a + b;
    EXPECT_EQ(tb::crc32c(ab.data(), ab.size()), bitwise_crc32c(ab));
    EXPECT_EQ(tb::crc32c(b.data(), b.size(), tb::crc32c(a.data(), a.size())), bitwise_crc32c(ab)) << "continued";
    EXPECT_EQ(tb::masked_crc32c(ab.data(), ab.size()), mask(bitwise_crc32c(ab)));
  }
}

TEST(TensorBoard, RecordsAreFramedAsTFRecord) {
  for (int trial = 0; trial < 20; ++trial) {
    const std::string payload = random_bytes(size_t(random_int(0, 5000)));
    const std::string r = tb::tfrecord(payload);
    ASSERT_EQ(r.size(), payload.size() + 16);
    EXPECT_EQ(read_le(r, 0, 8), payload.size());
    EXPECT_EQ(read_le(r, 8, 4), mask(bitwise_crc32c(r.substr(0, 8))));
    EXPECT_EQ(r.substr(12, payload.size()), payload);
    EXPECT_EQ(read_le(r, 12 + payload.size(), 4), mask(bitwise_crc32c(payload)));
  }
}

TEST(TensorBoard, SummariesReadBackWithTensorBoardsReader) {
  TempDir dir;
  std::ostringstream warn;
  std::map<std::string, std::vector<std::pair<int64_t, float>>> scalars;
  const int w = random_int(1, 40), h = random_int(1, 40);
  std::vector<float> values = testing::random_floats(size_t(random_int(1, 2000)), -3.0f, 5.0f);
  const std::string text = "random text " + std::to_string(testing::rng()());
  {
    const auto board = TensorBoard::open(dir.file("run/a"), warn);
    for (int t = 0; t < 3; ++t) {
      const std::string tag = "group/tag" + std::to_string(t);
      for (int64_t step = random_int(0, 5), k = 0; k < random_int(1, 20); ++k, step += random_int(1, 3)) {
        scalars[tag].push_back({step, testing::random_floats(1, -100.0f, 100.0f)[0]});
        board->scalar(tag, step, scalars[tag].back().second);
      }
    }
    RgbImage img(w, h);
    for (auto& p : img.pixels) p = static_cast<uint8_t>(random_int(0, 255));
    board->image("pictures/one", 7, img, "a caption");
    board->histogram("values", 3, values.data(), int64_t(values.size()));
    board->text("notes", 0, text);
    board->flush();
    EXPECT_TRUE(board->ok());
  }
  EXPECT_EQ(warn.str(), "");
  ASSERT_EQ(std::distance(fs::directory_iterator(dir.file("run/a")), fs::directory_iterator{}), 1);
  EXPECT_EQ(fs::directory_iterator(dir.file("run/a"))->path().filename().string().rfind("events.out.tfevents.", 0), 0u);

  const auto j = read_board(dir.file("run/a"));
  for (const auto& [tag, points] : scalars) {
    ASSERT_EQ(j["scalars"][tag].size(), points.size()) << tag;
    for (size_t i = 0; i < points.size(); ++i) {
      EXPECT_EQ(j["scalars"][tag][i][0].get<int64_t>(), points[i].first);
      EXPECT_EQ(j["scalars"][tag][i][1].get<float>(), points[i].second);
    }
  }
  const auto& image = j["images"]["pictures/one"][0];
  EXPECT_EQ(image["step"], 7);
  EXPECT_EQ(image["width"], w);
  EXPECT_EQ(image["height"], h);
  EXPECT_EQ(image["png"], (std::vector<int>{w, h}));
  EXPECT_EQ(j["descriptions"]["pictures/one"], "a caption");
  const auto& histo = j["histograms"]["values"][0];
  double sum = 0;
  for (float v : values) sum += v;
  EXPECT_EQ(histo["num"].get<double>(), double(values.size()));
  EXPECT_EQ(histo["bucket_total"].get<double>(), double(values.size()));
  EXPECT_EQ(histo["min"].get<double>(), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(histo["max"].get<double>(), *std::max_element(values.begin(), values.end()));
  EXPECT_NEAR(histo["sum"].get<double>(), sum, 1e-9 * double(values.size()));
  EXPECT_EQ(j["texts"]["notes"][0][1], text);
}

TEST(TensorBoard, AFolderThatCannotBeMadeIsAnErrorNamingIt) {
  TempDir dir;
  std::ofstream(dir.file("plain-file")) << "x";
  std::ostringstream warn;
  const std::string bad = dir.file("plain-file") + "/runs";
  testing::expect_error([&] { TensorBoard::open(bad, warn); }, {"--tensorboard", bad, "give a folder you can write to"});
}

// The parameters of the trainable nodes, as the run's histograms should count them.
std::map<std::string, int64_t> trainable_params(const Model& m, const std::vector<bool>& frozen) {
  std::map<std::string, int64_t> out;
  for (const auto& p : m.params())
    if (!frozen[size_t(p.node)] && !p.spec.buffer) out[p.name] = p.spec.shape.numel();
  return out;
}

TEST(TensorBoard, TrainingWritesScalarsImagesHistogramsAndItsConfig) {
  TempDir dir;
  HostPool pool;
  const int classes = random_int(3, 5);
  const int64_t n = random_int(30, 50), batch = 8;
  InMemorySource data(random_dataset(n, classes)), val(random_dataset(random_int(20, 30), classes));
  auto model = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1},
                                     .num_classes = classes, .seed = testing::test_seed()},
                           pool);
  TrainOptions o;
  o.epochs = 2;
  o.batch = batch;
  o.seed = testing::test_seed() % 1000;
  o.optimizer.kind = "adam";
  o.optimizer.lr = 0.003f;
  o.frozen.assign(size_t(model->num_nodes()), false);
  o.frozen[size_t(model->find_node("conv1"))] = true;
  o.cache_features = FeatureCacheMode::Off;
  o.lr_mult = {{"fc2", 0.25f}};
  o.metrics_path = dir.file("metrics.jsonl");
  const std::string marker = "marker-" + std::to_string(testing::rng()() % 100000);
  o.config_json = nlohmann::json{{"model", "fmnist_cnn"}, {"note", marker}}.dump();
  std::ostringstream warn, log;
  const auto board = TensorBoard::open(dir.file("tb"), warn);
  o.tensorboard = board.get();
  const auto reports = train(*model, data, &val, o, log);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(warn.str(), "");

  const auto j = read_board(dir.file("tb"));
  std::vector<nlohmann::json> metrics;
  std::ifstream in(o.metrics_path);
  for (std::string line; std::getline(in, line);) metrics.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(metrics.size(), 2u);
  for (const auto& [tag, key] : std::vector<std::pair<std::string, std::string>>{
           {"epoch/loss", "loss"}, {"epoch/accuracy", "accuracy"}, {"epoch/val_loss", "val_loss"},
           {"epoch/val_accuracy", "val_accuracy"}, {"epoch/lr", "lr"},
           {"epoch/images_per_second", "images_per_second"}}) {
    ASSERT_EQ(j["scalars"][tag].size(), 2u) << tag;
    for (size_t e = 0; e < 2; ++e) {
      EXPECT_EQ(j["scalars"][tag][e][0], e + 1) << tag;
      EXPECT_EQ(j["scalars"][tag][e][1].get<float>(), metrics[e][key].get<float>()) << tag;
    }
  }
  EXPECT_EQ(j["scalars"]["epoch/lr/fc2"][1][1].get<float>(), float(metrics[1]["lr"].get<double>() * 0.25f));
  EXPECT_GT(j["scalars"]["epoch/peak_memory_bytes"][0][1].get<double>(), 0.0);

  // One point per step; each epoch's step losses, weighted by their batches, make its loss.
  const int64_t steps_per_epoch = (n + batch - 1) / batch;
  const auto& step_loss = j["scalars"]["step/loss"];
  ASSERT_EQ(int64_t(step_loss.size()), 2 * steps_per_epoch);
  for (int e = 0; e < 2; ++e) {
    double sum = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const auto& point = step_loss[size_t(e * steps_per_epoch + s)];
      EXPECT_EQ(point[0].get<int64_t>(), e * steps_per_epoch + s + 1);
      sum += point[1].get<double>() * double(std::min(batch, n - s * batch));
    }
    EXPECT_NEAR(sum / double(n), metrics[size_t(e)]["loss"].get<double>(), 1e-5);
  }
  for (const char* tag : {"step/accuracy", "step/lr", "step/lr/fc2", "step/images_per_second", "step/peak_memory_bytes"})
    EXPECT_EQ(int64_t(j["scalars"][tag].size()), 2 * steps_per_epoch) << tag;

  const auto expected = trainable_params(*model, o.frozen);
  size_t histograms = 0;
  for (const auto& [tag, points] : j["histograms"].items()) {
    ++histograms;
    const std::string name = tag.substr(std::string("weights/").size());
    ASSERT_TRUE(expected.count(name)) << tag << " is not a trainable parameter";
    ASSERT_EQ(points.size(), 2u);
    for (const auto& p : points) {
      EXPECT_EQ(p["num"].get<double>(), double(expected.at(name))) << tag;
      EXPECT_EQ(p["bucket_total"].get<double>(), double(expected.at(name))) << tag;
    }
  }
  EXPECT_EQ(histograms, expected.size());
  EXPECT_FALSE(j["histograms"].contains("weights/conv1.weight")) << "conv1 is frozen";

  const int cell = std::clamp(384 / classes, 4, 32);
  for (const auto& img : j["images"]["val/confusion_matrix"]) {
    EXPECT_EQ(img["width"], classes * cell + 2);
    EXPECT_EQ(img["png"], (std::vector<int>{classes * cell + 2, classes * cell + 2}));
  }
  EXPECT_EQ(j["images"]["val/confusion_matrix"].size(), 2u);
  // Random labels: some validation images are always wrong. Tiles of 8x8 enlarged to 64.
  ASSERT_EQ(j["images"]["val/misclassified"].size(), 2u);
  const auto& grid = j["images"]["val/misclassified"][0];
  EXPECT_EQ(grid["width"].get<int>() % 66, 2);
  EXPECT_EQ(grid["height"].get<int>() % 66, 2);
  EXPECT_TRUE(testing::has(j["descriptions"]["val/misclassified"].get<std::string>(), "true c"));
  EXPECT_TRUE(testing::has(j["texts"]["config"][0][1].get<std::string>(), marker));
}

// A validation pass over cached features keeps no images; they are read back by index.
TEST(TensorBoard, MisclassifiedImagesAreReadBackByTheirIndex) {
  const int classes = random_int(2, 6);
  const Dataset d = random_dataset(random_int(20, 80), classes);
  InMemorySource source(d);
  ValidationExamples v(classes, source.sample_shape(), /*keep_inputs=*/false);
  v.max_kept = random_int(1, 20);
  const std::vector<float> logits = testing::random_floats(size_t(d.size() * classes));
  for (int64_t first = 0; first < d.size();) {
    const int64_t n = std::min<int64_t>(random_int(1, 9), d.size() - first);
    v.add(logits.data() + first * classes, d.labels.data() + first, nullptr, n);
    first += n;
  }
  size_t wrong = 0;
  for (int64_t i = 0; i < d.size(); ++i)
    wrong += std::max_element(logits.begin() + i * classes, logits.begin() + (i + 1) * classes) -
                 (logits.begin() + i * classes) != d.labels[size_t(i)];
  ASSERT_EQ(v.misclassified.size(), std::min<size_t>(wrong, size_t(v.max_kept)));
  v.read_inputs(source, random_int(1, 16));
  const int64_t floats = source.sample_shape().numel();
  for (const auto& m : v.misclassified) {
    EXPECT_EQ(m.label, d.labels[size_t(m.index)]);
    EXPECT_NE(m.label, m.predicted);
    const float* image = d.images.values.data() + m.index * floats;
    EXPECT_EQ(m.input, std::vector<float>(image, image + floats)) << "example " << m.index;
  }
}

TEST(TensorBoard, WithCachedFeaturesTheMisclassifiedGridIsStillDrawn) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(32, 3)), val(random_dataset(24, 3));
  auto model = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1},
                                     .num_classes = 3, .seed = testing::test_seed()},
                           pool);
  TrainOptions o;
  o.batch = 8;
  o.seed = testing::test_seed() % 1000;
  o.frozen.assign(size_t(model->num_nodes()), false);
  for (const char* node : {"conv1", "conv2"}) o.frozen[size_t(model->find_node(node))] = true;
  o.cache_features = FeatureCacheMode::On;
  std::ostringstream warn, log;
  const auto board = TensorBoard::open(dir.file("tb"), warn);
  o.tensorboard = board.get();
  train(*model, data, &val, o, log);
  const auto j = read_board(dir.file("tb"));
  ASSERT_EQ(j["images"]["val/misclassified"].size(), 1u) << "random labels: some are always wrong";
  EXPECT_EQ(j["images"]["val/misclassified"][0]["width"].get<int>() % 66, 2);
  EXPECT_EQ(j["images"]["val/confusion_matrix"].size(), 1u);
}

TEST(TensorBoard, AFullDiskStopsLoggingOnceAndTrainingGoesOn) {
  TempDir dir;
  HostPool pool;
  InMemorySource data(random_dataset(40, 3)), val(random_dataset(16, 3));
  auto model = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1},
                                     .num_classes = 3, .seed = testing::test_seed()},
                           pool);
  TrainOptions o;
  o.epochs = 3;
  o.batch = 8;
  o.seed = testing::test_seed() % 1000;
  std::ostringstream warn, log;
  const auto board = TensorBoard::open(dir.file("tb"), warn);
  o.tensorboard = board.get();
  // Files may grow to a few KiB: the event file fills up in the first epoch, as a full disk
  // would stop it (EFBIG instead of ENOSPC; SIGXFSZ ignored so that the write fails).
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const rlimit small{rlim_t(random_int(2000, 6000)), old.rlim_max};
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::vector<EpochReport> reports;
  std::string error;
  try {
    reports = train(*model, data, &val, o, log);
  } catch (const std::exception& e) {
    error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(error, "");
  EXPECT_EQ(reports.size(), 3u) << "training goes on";
  EXPECT_FALSE(board->ok());
  const std::string said = warn.str();
  EXPECT_TRUE(testing::has(said, "TensorBoard logging stopped")) << said;
  EXPECT_TRUE(testing::has(said, board->path())) << said;
  EXPECT_EQ(said.find("TensorBoard logging stopped"), said.rfind("TensorBoard logging stopped")) << "said once: " << said;
  EXPECT_LE(fs::file_size(board->path()), small.rlim_cur);
  // What was written before stays readable.
  const auto j = read_board(dir.file("tb"));
  EXPECT_GE(j["scalars"]["step/loss"].size(), 1u);
}

}  // namespace
}  // namespace graft
