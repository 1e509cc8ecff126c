// <checkpoint>.classes.json: round trip, atomic write, and validation errors naming the path.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/class_map.h"
#include "base/error.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

std::string read_error(const std::string& path) {
  try {
    read_class_map(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ClassMap, RoundTrip) {
  TempDir dir;
  const std::string ckpt = (dir.path / "model.safetensors").string();
  EXPECT_EQ(class_map_path(ckpt), ckpt + ".classes.json");
  std::vector<std::string> classes;
  const int n = testing::random_int(1, 20);
  for (int i = 0; i < n; ++i) classes.push_back("class " + std::to_string(testing::random_int(0, 1 << 20)) + "_" + std::to_string(i));
  classes.push_back("caf\xc3\xa9 \"quoted\" \\ name");
  write_class_map(class_map_path(ckpt), classes);
  EXPECT_EQ(read_class_map(class_map_path(ckpt)), classes);
  // Overwrite in place, no temporary left behind.
  write_class_map(class_map_path(ckpt), {"cat", "dog"});
  EXPECT_EQ(read_class_map(class_map_path(ckpt)), (std::vector<std::string>{"cat", "dog"}));
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path)) ++files;
  EXPECT_EQ(files, 1);
  std::ifstream in(class_map_path(ckpt));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"classes\""), std::string::npos) << text;
}

TEST(ClassMap, ReadErrorsNameThePath) {
  TempDir dir;
  const std::string p = (dir.path / "m.classes.json").string();
  const std::pair<std::string, std::string> cases[] = {
      {"{not json", "not valid JSON"},
      {"[\"a\"]", "expected an object"},
      {"{\"names\": [\"a\"]}", "expected an object"},
      {"{\"classes\": \"a\"}", "must be an array"},
      {"{\"classes\": [\"a\", 3]}", "class 1 is not a string"},
      {"{\"classes\": [\"a\", \"\"]}", "class 1 has an empty name"},
      {"{\"classes\": [\"a\", \"b\", \"a\"]}", "'a' appears more than once"},
      {"{\"classes\": []}", "empty"},
  };
  for (const auto& [text, expected] : cases) {
    write_text(p, text);
    const std::string e = read_error(p);
    EXPECT_NE(e.find(p), std::string::npos) << text << ": " << e;
    EXPECT_NE(e.find(expected), std::string::npos) << text << ": " << e;
  }
  const std::string missing = (dir.path / "none.json").string();
  EXPECT_NE(read_error(missing).find(missing + ": cannot open"), std::string::npos) << read_error(missing);
}

TEST(ClassMap, WriteRejectsBadListsAndMissingFolders) {
  TempDir dir;
  const std::string p = (dir.path / "x.classes.json").string();
  EXPECT_THROW(write_class_map(p, {"a", "a"}), Error);
  EXPECT_THROW(write_class_map(p, {"a", ""}), Error);
  EXPECT_THROW(write_class_map(p, {}), Error);
  EXPECT_FALSE(fs::exists(p));
  try {
    write_class_map((dir.path / "no" / "such" / "dir.json").string(), {"a"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dir.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace graft
