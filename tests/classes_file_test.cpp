// predict and eval on weights without a class map (a converted torchvision file: tensors,
// no metadata): classes named by index with one note, --classes-file (text or class map
// JSON) naming them, and the errors for a list that does not fit the model.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "runtime/class_map.h"
#include "runtime/memory_pool.h"
#include "runtime/safetensors.h"
#include "tests/graft_program.h"
#include "tests/image_writing.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::ProgramResult;
using testing::run_graft;

constexpr const char* kModel = "--device cpu --model vgg11 --width-divisor 8 --input 32 ";

void expect_contains(const std::string& output, const std::vector<std::string>& parts) {
  for (const auto& p : parts) EXPECT_NE(output.find(p), std::string::npos) << "missing '" << p << "' in:\n" << output;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// The JSON document at the end of a command's output: from the first line that opens one
// (note lines before it may hold brackets too).
nlohmann::json json_of(const ProgramResult& r) {
  size_t at = 0;
  while (at < r.output.size() && r.output[at] != '[' && r.output[at] != '{') {
    at = r.output.find('\n', at);
    if (at == std::string::npos) return nlohmann::json();
    ++at;
  }
  return nlohmann::json::parse(r.output.substr(at));
}

class ClassesFile : public ::testing::Test {
 protected:
  void SetUp() override {
    classes_ = testing::random_int(3, 9);
    // A VGG with torchvision's names and a random class count, saved twice: as a converted
    // file (tensors only) and as a graft checkpoint with a class map, the same weights.
    HostPool pool;
    auto model = build_model(ModelSpec{.architecture = "vgg11", .sample_shape = Shape{32, 32, 3},
                                       .num_classes = classes_, .seed = testing::test_seed(), .width_divisor = 8},
                             pool);
    for (int i = 0; i < classes_; ++i) names_.push_back("kind " + std::to_string(testing::random_int(0, 999)) + "_" + std::to_string(i));
    save_checkpoint(dir_.file("named.safetensors"), *model, nullptr, {}, CheckpointInfo{0, 0, names_, "{}", ""});
    write_class_map(class_map_path(dir_.file("named.safetensors")), names_);
    const SafetensorsFile saved = read_safetensors(dir_.file("named.safetensors"));
    std::map<std::string, HostTensor> tensors;
    for (const auto& [name, t] : saved.tensors) tensors[name] = t.to_host_tensor();
    write_safetensors(converted(), tensors, {});
    // Images of random pixels.
    for (int i = 0; i < 2; ++i) {
      std::vector<unsigned char> px(size_t(32 * 32 * 3));
      for (auto& v : px) v = static_cast<unsigned char>(testing::random_int(0, 255));
      stbi_write_png(dir_.file("img" + std::to_string(i) + ".png").c_str(), 32, 32, 3, px.data(), 32 * 3);
    }
  }
  std::string converted() const { return dir_.file("converted.safetensors"); }
  std::string image(int i) const { return dir_.file("img" + std::to_string(i) + ".png"); }
  // A folder with a subfolder per name, each holding the test's images.
  std::string folder(const std::string& name, const std::vector<std::string>& classes) const {
    for (const auto& c : classes) {
      fs::create_directories(dir_.path / name / c);
      for (int i = 0; i < 2; ++i) fs::copy_file(image(i), dir_.path / name / c / (std::to_string(i) + ".png"));
    }
    return dir_.file(name);
  }
  std::string names_text() const {
    std::string text;
    for (const auto& n : names_) text += n + "\n";
    return text;
  }

  testing::TempDir dir_;
  int classes_ = 0;
  std::vector<std::string> names_;
};

TEST_F(ClassesFile, PredictNamesClassesByIndexWithOneNote) {
  ASSERT_TRUE(read_safetensors(converted()).metadata.empty());
  const std::string top = " --top " + std::to_string(classes_ + 3) + " --json " + image(0) + " " + image(1);
  const auto bare = run_graft(std::string("predict ") + kModel + "--checkpoint " + converted() + top);
  ASSERT_EQ(bare.status, 0) << bare.output;
  EXPECT_NE(bare.output.find("note: " + converted() + " names no classes"), std::string::npos) << bare.output;
  EXPECT_NE(bare.output.find("--classes-file"), std::string::npos) << bare.output;
  const auto named = run_graft(std::string("predict ") + kModel + "--checkpoint " + dir_.file("named.safetensors") + top);
  ASSERT_EQ(named.status, 0) << named.output;
  EXPECT_EQ(named.output.find("note:"), std::string::npos) << named.output;

  // Every output once, named "class i" by its index; the same probabilities as the named
  // checkpoint of the same weights, whose names sit at the same indices.
  const auto a = json_of(bare), b = json_of(named);
  ASSERT_EQ(a.size(), 2u);
  for (size_t img = 0; img < 2; ++img) {
    ASSERT_EQ(a[img]["top"].size(), size_t(classes_)) << a.dump();
    std::set<int> seen;
    for (size_t k = 0; k < size_t(classes_); ++k) {
      const auto& x = a[img]["top"][k];
      const auto& y = b[img]["top"][k];
      const int i = x["index"].get<int>();
      seen.insert(i);
      EXPECT_EQ(x["class"], "class " + std::to_string(i));
      EXPECT_EQ(y["index"].get<int>(), i);
      EXPECT_EQ(y["class"], names_[size_t(i)]);
      EXPECT_EQ(x["probability"].get<double>(), y["probability"].get<double>());
    }
    EXPECT_EQ(seen.size(), size_t(classes_));
  }
  // The text form prints the index names too.
  const auto text = run_graft(std::string("predict ") + kModel + "--checkpoint " + converted() + " --top 1 " + image(0));
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find("%  class " + std::to_string(a[0]["top"][0]["index"].get<int>())), std::string::npos)
      << text.output;
}

TEST_F(ClassesFile, ClassesFileNamesThemAsTextOrClassMapJson) {
  const std::string top = " --top " + std::to_string(classes_) + " --json " + image(0) + " " + image(1);
  const auto named = run_graft(std::string("predict ") + kModel + "--checkpoint " + dir_.file("named.safetensors") + top);
  ASSERT_EQ(named.status, 0) << named.output;
  write_text(dir_.file("names.txt"), names_text() + "\n\n");  // trailing blank lines are allowed
  write_class_map(dir_.file("names.json"), names_);
  for (const std::string file : {"names.txt", "names.json"}) {
    const auto r = run_graft(std::string("predict ") + kModel + "--checkpoint " + converted() + " --classes-file " +
                             dir_.file(file) + top);
    ASSERT_EQ(r.status, 0) << file << ": " << r.output;
    EXPECT_EQ(r.output.find("note:"), std::string::npos) << r.output;
    EXPECT_EQ(json_of(r), json_of(named)) << file;
  }
  // CRLF line ends are one name per line as well.
  std::string crlf;
  for (const auto& n : names_) crlf += n + "\r\n";
  write_text(dir_.file("crlf.txt"), crlf);
  EXPECT_EQ(read_class_names_file(dir_.file("crlf.txt")), names_);
}

TEST_F(ClassesFile, AListThatDoesNotFitIsAnErrorNamingBothCounts) {
  // One name too many or too few: both numbers and the file.
  for (const int n : {classes_ + 1, classes_ - 1}) {
    std::string text;
    for (int i = 0; i < n; ++i) text += "n" + std::to_string(i) + "\n";
    const std::string file = dir_.file("wrong" + std::to_string(n) + ".txt");
    write_text(file, text);
    const std::string data = folder("f" + std::to_string(n), {"n0"});
    for (const std::string cmd : {"predict ", "eval "}) {
      const std::string rest = cmd == "predict " ? image(0) : "--data " + data;
      const auto r = run_graft(cmd + kModel + "--checkpoint " + converted() + " --classes-file " + file + " " + rest);
      EXPECT_NE(r.status, 0) << r.output;
      expect_contains(r.output, {file, "names " + std::to_string(n) + " classes",
                                          "has " + std::to_string(classes_) + " outputs"});
    }
  }
  // A blank line between names would shift every index after it.
  write_text(dir_.file("gap.txt"), "a\nb\n\nc\n");
  auto r = run_graft(std::string("predict ") + kModel + "--checkpoint " + converted() + " --classes-file " +
                     dir_.file("gap.txt") + " " + image(0));
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"gap.txt", "line 3 is blank"});
  write_text(dir_.file("twice.txt"), "a\nb\na\n");
  r = run_graft(std::string("predict ") + kModel + "--checkpoint " + converted() + " --classes-file " +
                dir_.file("twice.txt") + " " + image(0));
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"twice.txt", "'a' appears more than once"});
  r = run_graft(std::string("predict ") + kModel + "--checkpoint " + converted() + " --classes-file " +
                dir_.file("absent.txt") + " " + image(0));
  EXPECT_NE(r.status, 0);
  expect_contains(r.output, {"absent.txt", "cannot open"});
}

TEST_F(ClassesFile, EvalTakesTheFoldersClassesOrTheFilesNames) {
  // Without names, a folder with one subfolder per output: its classes in sorted order, with a note.
  std::vector<std::string> sorted = names_;
  std::sort(sorted.begin(), sorted.end());
  const std::string all = folder("all", sorted);
  auto bare = run_graft(std::string("eval ") + kModel + "--checkpoint " + converted() + " --data " + all + " --json");
  ASSERT_EQ(bare.status, 0) << bare.output;
  EXPECT_NE(bare.output.find("note: " + converted() + " names no classes"), std::string::npos) << bare.output;
  const auto a = json_of(bare);
  EXPECT_EQ(a["examples"].get<int>(), 2 * classes_);
  EXPECT_EQ(a["classes"].get<std::vector<std::string>>(), sorted);

  // The named checkpoint of the same weights on the same folder: labels follow its names,
  // and --classes-file with those names on the converted file gives the same report.
  const auto named = run_graft(std::string("eval ") + kModel + "--checkpoint " + dir_.file("named.safetensors") +
                               " --data " + all + " --json");
  ASSERT_EQ(named.status, 0) << named.output;
  write_text(dir_.file("names.txt"), names_text());
  const auto filed = run_graft(std::string("eval ") + kModel + "--checkpoint " + converted() + " --classes-file " +
                               dir_.file("names.txt") + " --data " + all + " --json");
  ASSERT_EQ(filed.status, 0) << filed.output;
  EXPECT_EQ(json_of(filed), json_of(named));
  EXPECT_EQ(json_of(filed)["classes"].get<std::vector<std::string>>(), names_);

  // A folder with only some of the named classes: matched by name.
  const std::string some = folder("some", {names_[1], names_[0]});
  const auto part = run_graft(std::string("eval ") + kModel + "--checkpoint " + converted() + " --classes-file " +
                              dir_.file("names.txt") + " --data " + some + " --json");
  ASSERT_EQ(part.status, 0) << part.output;
  EXPECT_EQ(json_of(part)["examples"].get<int>(), 4);

  // Without names and with fewer subfolders than outputs: both counts and what to do.
  const auto fewer = run_graft(std::string("eval ") + kModel + "--checkpoint " + converted() + " --data " + some);
  EXPECT_NE(fewer.status, 0) << fewer.output;
  expect_contains(fewer.output, {converted(), "names no classes", std::to_string(classes_) + " outputs",
                                          "has 2 classes", "--classes-file"});
}

}  // namespace
}  // namespace graft
