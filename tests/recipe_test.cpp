// The reference recipe end to end through the graft program, on a tiny image folder the
// test writes itself: a VGG with torchvision's names at 32x32, the Keras-style head and
// augmentation, stage 2 from stage 1's checkpoint with a discriminative learning rate,
// exact resume, eval, predict, and the named errors for bad folders and checkpoints.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>
#include "runtime/safetensors.h"
#include "tests/graft_program.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

using Result = testing::ProgramResult;
using testing::slurp;
Result run(const std::string& args) { return testing::run_graft(args); }

class Recipe : public ::testing::Test {
 protected:
  void SetUp() override {
    // Three classes told apart by colour, with noise; PNG, JPEG and BMP files.
    const std::vector<std::pair<std::string, std::array<int, 3>>> classes{
        {"apple", {200, 40, 40}}, {"leaf", {40, 190, 60}}, {"sky", {50, 80, 210}}};
    std::mt19937 gen(static_cast<unsigned>(testing::test_seed()));
    std::normal_distribution<float> noise(0.0f, 35.0f);
    for (const auto& split : {std::pair<std::string, int>{"train", 14}, {"test", 5}}) {
      for (const auto& [name, colour] : classes) {
        const fs::path folder = dir_.path / split.first / name;
        fs::create_directories(folder);
        for (int i = 0; i < split.second; ++i) {
          const int w = 36 + i % 5, h = 40 - i % 3;
          std::vector<unsigned char> px(size_t(w * h * 3));
          for (size_t k = 0; k < px.size(); ++k)
            px[k] = static_cast<unsigned char>(std::clamp(float(colour[k % 3]) + noise(gen), 0.0f, 255.0f));
          const std::string stem = (folder / std::to_string(i)).string();
          if (i % 3 == 0) stbi_write_png((stem + ".png").c_str(), w, h, 3, px.data(), w * 3);
          if (i % 3 == 1) stbi_write_jpg((stem + ".jpg").c_str(), w, h, 3, px.data(), 90);
          if (i % 3 == 2) stbi_write_bmp((stem + ".bmp").c_str(), w, h, 3, px.data());
        }
      }
    }
    std::ofstream(dir_.path / "train" / "apple" / "corrupt.jpg") << "definitely not a jpeg";
  }
  std::string path(const std::string& p) const { return dir_.file(p); }
  testing::TempDir dir_;
};

std::vector<nlohmann::json> read_jsonl(const std::string& file) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

void r_expect(const Result& r, const std::string& needle) {
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "missing '" << needle << "' in:\n" << r.output;
}

constexpr const char* kModel = "--device cpu --progress off --model vgg11 --width-divisor 8 --input 32 --batch 8 ";

TEST_F(Recipe, TwoStagesEvalPredictAndExactResume) {
  // Stage 1: the Keras recipe's head on a frozen base, augmentation, validation.
  const std::string stage1 = std::string("train ") + kModel + "--data " + path("train") + " --val " + path("test") +
                             " --head flatten,dense:32,relu,dropout:0.25,dense:N --freeze 'features.*'"
                             " --optimizer adam --lr 0.003 --shear 11 --zoom 0.2 --hflip --normalize unit --seed 3";
  // A briefly trained base stands in for pretrained weights, so frozen features carry signal.
  auto r = run(std::string("train ") + kModel + "--data " + path("train") + " --head flatten,dense:32,relu,dropout:0.25,dense:N"
          " --epochs 4 --lr 0.003 --seed 4 --save " + path("base.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(stage1 + " --epochs 6 --init-from " + path("base.safetensors") + " --init-only 'features.*' --save " +
          path("stage1.safetensors") + " --metrics " + path("stage1.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1 bad images skipped"), std::string::npos) << r.output;
  const auto rows = read_jsonl(path("stage1.jsonl"));
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_LT(rows.back()["loss"].get<double>(), rows.front()["loss"].get<double>()) << "the loss must go down";
  EXPECT_EQ(slurp(path("stage1.safetensors.classes.json")).find("apple") != std::string::npos, true);

  // Stage 2: unfreeze the last block at a tenth of the learning rate.
  r = run(std::string("train ") + kModel + "--data " + path("train") + " --head flatten,dense:32,relu,dropout:0.25,dense:N"
          " --init-from " + path("stage1.safetensors") + " --strict --freeze 'features.[0-9]' --freeze 'features.1[0-5]'"
          " --lr 0.001 --lr-mult 'features.1[6-9]=0.1' --epochs 2 --save " + path("stage2.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("trainable: features.16, features.18, head.1, head.4"), std::string::npos) << r.output;

  // Eval and predict rebuild the model from the checkpoint's recorded flags.
  r = run("eval --device cpu --data " + path("test") + " --checkpoint " + path("stage2.safetensors") + " --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto report = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(report["examples"].get<int>(), 15);
  EXPECT_GE(report["top5"].get<double>(), report["accuracy"].get<double>());
  EXPECT_EQ(report["confusion"].size(), 3u);
  r = run("predict --device cpu --checkpoint " + path("stage2.safetensors") + " --top 2 " + path("test/sky/0.png") +
          " " + path("test/leaf/1.jpg"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("test/sky/0.png"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("%  "), std::string::npos) << r.output;
  r = run("predict --device cpu --checkpoint " + path("stage2.safetensors") + " " + path("nope.png"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("nope.png"), std::string::npos) << r.output;

  // Resume: 2 epochs + resume to 4 equals 4 straight, bit for bit (augmentation included).
  const std::string resumable = stage1 + " --init-from " + path("base.safetensors") + " --init-only 'features.*'";
  ASSERT_EQ(run(resumable + " --epochs 4 --save " + path("straight.safetensors")).status, 0);
  ASSERT_EQ(run(resumable + " --epochs 2 --save " + path("half.safetensors")).status, 0);
  r = run(stage1 + " --epochs 4 --resume " + path("half.safetensors") + " --save " + path("half.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  // Tensors bit for bit (the recorded configurations differ: the resumed run has no --init-from).
  const auto a = read_safetensors(path("half.safetensors")), b = read_safetensors(path("straight.safetensors"));
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) EXPECT_TRUE(t.bytes == b.tensors.at(name).bytes) << name << " differs after resume";
}

TEST_F(Recipe, BadFoldersAndForeignCheckpointsAreNamed) {
  fs::create_directories(dir_.path / "empty_root");
  r_expect(run(std::string("train ") + kModel + "--data " + path("empty_root")), "empty_root");
  fs::create_directories(dir_.path / "val_extra" / "apple");
  fs::create_directories(dir_.path / "val_extra" / "banana");
  fs::copy_file(dir_.path / "test" / "apple" / "0.png", dir_.path / "val_extra" / "apple" / "0.png");
  fs::copy_file(dir_.path / "test" / "apple" / "0.png", dir_.path / "val_extra" / "banana" / "0.png");
  r_expect(run(std::string("train ") + kModel + "--data " + path("train") + " --val " + path("val_extra") +
               " --head gap,dense:N"),
           "banana");
  // A checkpoint of another architecture.
  ASSERT_EQ(run(std::string("train ") + kModel + "--data " + path("train") + " --epochs 1 --head gap,dense:N --save " +
                path("vgg.safetensors"))
                .status,
            0);
  const auto r = run("train --device cpu --progress off --model resnet18 --width-divisor 8 --input 32 --data " +
                     path("train") + " --head gap,dense:N --init-from " + path("vgg.safetensors"));
  r_expect(r, "features.0.weight");
}

}  // namespace
}  // namespace graft
