// Atomic writes: content lands whole, replaces the old file, and a failure at any point
// leaves the old file as it was and no temporary file behind.
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "runtime/atomic_file.h"
#include "base/error.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using graft::testing::slurp;
using graft::testing::TempDir;

namespace {

std::string random_bytes(size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(graft::testing::random_int(0, 255));
  return s;
}

// Names in `dir` other than `keep`: any leftover temporary file shows up here.
std::vector<std::string> others(const fs::path& dir, const std::string& keep) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != keep) out.push_back(e.path().filename().string());
  return out;
}

}  // namespace

TEST(AtomicFile, WritesAllChunksAndReplacesOldContent) {
  TempDir dir;
  const std::string path = dir.file("out.bin");
  const std::string a = random_bytes(static_cast<size_t>(graft::testing::random_int(0, 5000)));
  const std::string b = random_bytes(static_cast<size_t>(graft::testing::random_int(1, 70000)));
  graft::write_file_atomic(path, {a, std::string_view(), b});
  EXPECT_EQ(slurp(path), a + b);
  EXPECT_TRUE(others(dir.path, "out.bin").empty());

  const std::string c = random_bytes(17);
  graft::write_file_atomic(path, {c});
  EXPECT_EQ(slurp(path), c);
  EXPECT_TRUE(others(dir.path, "out.bin").empty());

  graft::write_file_atomic(path, {});
  EXPECT_EQ(slurp(path), "");
}

TEST(AtomicFile, MissingDirectoryIsReportedWithPathAndReason) {
  TempDir dir;
  const std::string path = dir.file("gone/out.bin");
  try {
    graft::write_file_atomic(path, {"hello"});
    FAIL() << "expected graft::Error";
  } catch (const graft::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  }
  EXPECT_TRUE(others(dir.path, "").empty());
}

TEST(AtomicFile, DirectoryVanishingLeavesNothingBehind) {
  TempDir dir;
  const fs::path sub = dir.path / "run";
  fs::create_directories(sub);
  const std::string path = (sub / "ckpt.bin").string();
  graft::write_file_atomic(path, {"old"});
  fs::remove_all(sub);  // the folder goes away between checkpoints
  EXPECT_THROW(graft::write_file_atomic(path, {"new"}), graft::Error);
  EXPECT_FALSE(fs::exists(sub));
  EXPECT_TRUE(others(dir.path, "").empty());
}

TEST(AtomicFile, FailedWriteKeepsOldFileAndRemovesTemp) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::string old = random_bytes(100);
  graft::write_file_atomic(path, {old});

  // Make the write itself fail part-way: a file size limit turns write() into EFBIG.
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* saved_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg;
  try {
    graft::write_file_atomic(path, {random_bytes(1000), random_bytes(100000)});
  } catch (const graft::Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, saved_handler);

  ASSERT_FALSE(msg.empty()) << "the write should have failed";
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  EXPECT_EQ(slurp(path), old);
  EXPECT_TRUE(others(dir.path, "model.safetensors").empty());
}

TEST(AtomicFile, RenameOverDirectoryFailsAndKeepsIt) {
  TempDir dir;
  const fs::path target = dir.path / "taken";
  fs::create_directories(target / "inside");
  EXPECT_THROW(graft::write_file_atomic(target.string(), {"data"}), graft::Error);
  EXPECT_TRUE(fs::is_directory(target / "inside"));
  EXPECT_TRUE(others(dir.path, "taken").empty());
}
