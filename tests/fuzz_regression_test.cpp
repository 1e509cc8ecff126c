// Replays every committed fuzz input through the fuzz targets' own code (tests/fuzz/targets.h)
// in the normal suite: the seed corpora (tests/fuzz/corpus/<target>/) and every input a
// fuzzer ever crashed on (tests/fuzz/regressions/<target>/). Each must be parsed
// consistently or refused with a graft::Error; under tools/test.sh --asan the same replay
// also catches memory errors and leaks. New crash inputs: see tools/fuzz.sh.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/targets.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = fs::path(GRAFT_FIXTURE_DIR).parent_path() / "fuzz";

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> out;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path d = kFuzzDir / kind / target;
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d))
      if (e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(FuzzRegression, EveryTargetHasASeedCorpus) {
  ASSERT_TRUE(fs::is_directory(kFuzzDir)) << kFuzzDir;
  for (const auto& t : fuzz::targets())
    EXPECT_FALSE(inputs_of(t.name).empty()) << "no committed inputs for " << t.name << " under " << kFuzzDir;
}

TEST(FuzzRegression, CommittedInputsAreParsedOrRefusedCleanly) {
  int replayed = 0;
  for (const auto& t : fuzz::targets()) {
    for (const fs::path& p : inputs_of(t.name)) {
      const std::vector<uint8_t> b = bytes_of(p);
      std::string broken;
      try {
        broken = t.check(b.data(), b.size());
      } catch (const std::exception& e) {
        broken = std::string("threw a non-graft::Error exception: ") + e.what();
      }
      EXPECT_EQ(broken, "") << t.name << " on " << p.string();
      ++replayed;
    }
  }
  std::printf("[graft] replayed %d committed fuzz inputs\n", replayed);
}

// Each file under regressions/ documents one bug found by fuzzing: a plain, small file.
TEST(FuzzRegression, RegressionInputsAreSmallFiles) {
  for (const auto& t : fuzz::targets()) {
    const fs::path d = kFuzzDir / "regressions" / t.name;
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d)) {
      EXPECT_TRUE(e.is_regular_file()) << e.path();
      if (e.is_regular_file()) {
        EXPECT_LE(e.file_size(), 1u << 20) << e.path();
      }
    }
  }
}

}  // namespace
}  // namespace graft
