// graft predict runs the checkpoint through the public API's forward (graft::api::Model),
// --batch images at a time: the probabilities it prints are the softmax of the API's logits
// for the same pixels, whatever the batch, in the order the images were given, with an
// unreadable image reported in its place and the run ending non-zero.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graft/graft.hpp"
#include "tests/graft_program.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::random_int;
using testing::run_graft;

// The JSON array predict prints (its first line that starts one, to the end).
nlohmann::json json_of(const testing::ProgramResult& r) {
  const size_t at = r.output.find("\n[");
  if (r.output.rfind("[", 0) == 0) return nlohmann::json::parse(r.output);
  if (at == std::string::npos) return nlohmann::json();
  return nlohmann::json::parse(r.output.substr(at + 1));
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep)
      out.emplace_back();
    else
      out.back().push_back(c);
  }
  return out;
}

std::vector<double> softmax(const float* z, int n) {
  double top = z[0];
  for (int i = 1; i < n; ++i) top = std::max<double>(top, z[i]);
  std::vector<double> p(size_t(n), 0.0);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += p[size_t(i)] = std::exp(double(z[i]) - top);
  for (double& x : p) x /= sum;
  return p;
}

class Predict : public ::testing::Test {
 protected:
  void SetUp() override {
    classes_ = random_int(3, 7);
    api::ModelSpec spec;
    spec.classes = classes_;
    spec.seed = testing::test_seed();
    model_ = std::make_unique<api::Model>(spec);
    model_->save(dir_.file("model.safetensors"));
    images_ = random_int(3, 6);
    for (int i = 0; i < images_; ++i) {
      pixels_.push_back(testing::random_pixels(28, 28, 1));  // gray 28x28: the input as it is
      testing::write_image(image(i), 28, 28, 1, pixels_.back());
    }
  }
  std::string image(int i) const { return dir_.file("img" + std::to_string(i) + ".png"); }
  std::string predict(const std::string& args) const {
    return "predict --checkpoint " + dir_.file("model.safetensors") + " --top " + std::to_string(classes_) + " " + args;
  }
  // What the API's forward gives for image i's pixels.
  std::vector<double> expected(int i) const {
    std::vector<float> x(28 * 28);
    for (size_t k = 0; k < x.size(); ++k) x[k] = float(pixels_[size_t(i)][k]) / 255.0f;
    std::vector<float> logits(static_cast<size_t>(classes_));
    model_->forward(api::Batch{.images = x.data(), .shape = {1, 28, 28, 1}}, logits.data());
    return softmax(logits.data(), classes_);
  }

  testing::TempDir dir_;
  int classes_ = 0, images_ = 0;
  std::vector<std::vector<uint8_t>> pixels_;
  std::unique_ptr<api::Model> model_;
};

TEST_F(Predict, ProbabilitiesAreTheApiForwardsInOrderForAnyBatch) {
  std::string paths;
  for (int i = 0; i < images_; ++i) paths += " " + image(i);
  const int batch = random_int(1, images_ + 1);
  const auto r = run_graft(predict("--json --batch " + std::to_string(batch) + paths));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = json_of(r);
  ASSERT_EQ(j.size(), size_t(images_)) << r.output;
  for (int i = 0; i < images_; ++i) {
    EXPECT_EQ(j[size_t(i)]["image"], image(i));
    const auto p = expected(i);
    ASSERT_EQ(j[size_t(i)]["top"].size(), size_t(classes_));
    double last = 2.0;
    for (const auto& t : j[size_t(i)]["top"]) {
      const double q = t["probability"].get<double>();
      EXPECT_NEAR(q, p[size_t(t["index"].get<int>())], 1e-5) << "image " << i << ", batch " << batch;
      EXPECT_LE(q, last);  // best first
      last = q;
    }
  }
}

TEST_F(Predict, AnUnreadableImageIsReportedInItsPlaceAndTheRunFails) {
  const std::string bad = dir_.file("broken.png");
  std::ofstream(bad) << "not an image";
  const int at = random_int(0, images_ - 1);
  std::string paths;
  for (int i = 0; i < images_; ++i) paths += " " + (i == at ? bad + " " + image(i) : image(i));
  const auto r = run_graft(predict("--batch 2" + paths));
  EXPECT_NE(r.status, 0) << r.output;
  const size_t error = r.output.find("graft: error: ");
  ASSERT_NE(error, std::string::npos) << r.output;
  EXPECT_NE(r.output.find(bad, error), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1 of " + std::to_string(images_ + 1) + " images could not be read"), std::string::npos)
      << r.output;
  // Every readable image printed, in order, the broken one's error between its neighbours.
  size_t previous = 0;
  for (int i = 0; i < images_; ++i) {
    const size_t line = r.output.find(image(i) + "\n");
    ASSERT_NE(line, std::string::npos) << r.output;
    EXPECT_GT(line, previous) << r.output;
    EXPECT_EQ(line > error, i >= at) << "image " << i << ", the broken one before image " << at << "\n" << r.output;
    previous = line;
  }
}

// A sequence model's predict reads sequence files: one prediction per line (with or without
// a label before a tab; comments skipped), named FILE:LINE, each the softmax of the API's
// forward for that sequence alone with its length, whatever the batch and the padding.
TEST(PredictSequences, EachLineIsTheApiForwardWithItsLength) {
  testing::TempDir dir;
  const int classes = random_int(2, 4), features = random_int(2, 4), steps = random_int(3, 6);
  const std::string spec = random_int(0, 1) ? "lstm:6,last,dense:N" : "gru:5,bi,mean,dense:N";
  api::Model model(api::ModelSpec{.architecture = spec, .input = {steps, features}, .classes = classes,
                                  .seed = testing::test_seed()});
  model.save(dir.file("seq.safetensors"));

  struct Line {
    std::string file;
    int number;
    std::vector<float> values;  // length * features
  };
  std::vector<Line> lines;
  std::string text[2];
  int line_no[2] = {0, 0};
  const int count = random_int(3, 7);
  for (int e = 0; e < count; ++e) {
    const int f = e == count - 1 ? 1 : 0;  // the last example alone in the second file
    if (random_int(0, 3) == 0) {
      text[f] += "# a comment\n";
      ++line_no[f];
    }
    const int length = e == 0 ? steps : random_int(1, steps);  // one full length: the padding's
    const auto v = testing::random_floats(size_t(length * features));
    std::string body;
    for (int t = 0; t < length; ++t) {
      for (int k = 0; k < features; ++k) body += (k ? "," : "") + std::to_string(v[size_t(t * features + k)]);
      body += t + 1 < length ? ";" : "";
    }
    text[f] += (random_int(0, 1) ? std::to_string(random_int(0, classes - 1)) + "\t" : "") + body + "\n";
    lines.push_back({dir.file(f ? "b.seq" : "a.seq"), ++line_no[f], {}});
    // What the file holds, read back as numbers (the text rounds them).
    for (const auto& step : split(body, ';'))
      for (const auto& x : split(step, ',')) lines.back().values.push_back(std::stof(x));
  }
  std::ofstream(dir.file("a.seq")) << text[0];
  std::ofstream(dir.file("b.seq")) << text[1];

  const int batch = random_int(1, count + 1);
  const auto r = run_graft("predict --model " + spec + " --checkpoint " + dir.file("seq.safetensors") + " --top " +
                           std::to_string(classes) + " --json --batch " + std::to_string(batch) + " " +
                           dir.file("a.seq") + " " + dir.file("b.seq"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = json_of(r);
  ASSERT_EQ(j.size(), lines.size()) << r.output;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(j[i]["sequence"], lines[i].file + ":" + std::to_string(lines[i].number)) << r.output;
    std::vector<float> x(size_t(steps * features), 0.0f);
    std::copy(lines[i].values.begin(), lines[i].values.end(), x.begin());
    const int32_t length = int32_t(lines[i].values.size() / size_t(features));
    api::Batch b{.images = x.data(), .shape = {1, steps, features}};
    b.lengths = &length;
    std::vector<float> logits(static_cast<size_t>(classes));
    model.forward(b, logits.data());
    const auto p = softmax(logits.data(), classes);
    ASSERT_EQ(j[i]["top"].size(), size_t(classes));
    for (const auto& t : j[i]["top"])
      EXPECT_NEAR(t["probability"].get<double>(), p[size_t(t["index"].get<int>())], 1e-5)
          << spec << ", example " << i << ", batch " << batch;
  }
}

// A flatten model reads exactly the steps it was built for (its head reads steps * features):
// predict and eval pad shorter files to them and cut longer sequences (with a note), from the
// checkpoint's input_shape, instead of refusing the checkpoint for the file's own longest.
TEST(PredictSequences, AFlattenModelReadsTheStepsItWasBuiltFor) {
  testing::TempDir dir;
  const int classes = 3, features = 2, steps = random_int(4, 6);
  const std::string spec = random_int(0, 1) ? "lstm:4,flatten,dense:N" : "gru:3,bi,flatten,dense:N";
  api::Model model(api::ModelSpec{.architecture = spec, .input = {steps, features}, .classes = classes,
                                  .seed = testing::test_seed()});
  model.save(dir.file("flat.safetensors"));
  // Every line shorter than the model's steps but one, which is longer.
  const int longer = random_int(0, 2);
  std::vector<std::vector<float>> kept;  // what the model reads of each line: at most `steps` steps
  std::string text;
  for (int e = 0; e < 3; ++e) {
    const int length = e == longer ? steps + random_int(1, 3) : random_int(1, steps - 1);
    const auto v = testing::random_floats(size_t(length * features));
    text += std::to_string(e % classes) + "\t";
    for (int t = 0; t < length; ++t) {
      for (int k = 0; k < features; ++k) text += (k ? "," : "") + std::to_string(v[size_t(t * features + k)]);
      text += t + 1 < length ? ";" : "\n";
    }
    const auto line = split(split(text.substr(0, text.size() - 1), '\n').back(), '\t').back();
    kept.emplace_back();
    for (const auto& step : split(line, ';'))
      for (const auto& x : split(step, ','))
        if (kept.back().size() < size_t(steps * features)) kept.back().push_back(std::stof(x));
  }
  std::ofstream(dir.file("short.seq")) << text;
  const auto r = run_graft("predict --model " + spec + " --checkpoint " + dir.file("flat.safetensors") + " --top " +
                           std::to_string(classes) + " --json " + dir.file("short.seq"));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string cut = "truncated 1 of 3 sequences in " + dir.file("short.seq") + " to the model's " +
                          std::to_string(steps) + " steps (its flatten pool reads exactly those";
  EXPECT_TRUE(testing::has(r.output, cut)) << r.output;
  const auto j = json_of(r);
  ASSERT_EQ(j.size(), 3u) << r.output;
  for (size_t i = 0; i < 3; ++i) {
    std::vector<float> x(size_t(steps * features), 0.0f);
    std::copy(kept[i].begin(), kept[i].end(), x.begin());
    const int32_t length = int32_t(kept[i].size() / size_t(features));
    api::Batch b{.images = x.data(), .shape = {1, steps, features}};
    b.lengths = &length;
    std::vector<float> logits(static_cast<size_t>(classes));
    model.forward(b, logits.data());
    const auto p = softmax(logits.data(), classes);
    for (const auto& t : j[i]["top"])
      EXPECT_NEAR(t["probability"].get<double>(), p[size_t(t["index"].get<int>())], 1e-5) << spec << ", line " << i;
  }
  const auto e =
      run_graft("eval --model " + spec + " --checkpoint " + dir.file("flat.safetensors") + " --data " + dir.file("short.seq"));
  EXPECT_EQ(e.status, 0) << e.output;
  EXPECT_TRUE(testing::has(e.output, "accuracy")) << e.output;
  EXPECT_TRUE(testing::has(e.output, cut)) << e.output;
}

}  // namespace
}  // namespace graft
