// TensorBoard event files (runtime/event_file.h, runtime/tensorboard.h), read back with the
// PyPI tensorboard package's EventAccumulator (tests/interop/read_tensorboard.py); the CRC
// and framing against independent references; an unwritable folder.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/event_file.h"
#include "runtime/tensorboard.h"
#include "tests/python_env.h"
#include "tests/testing.h"

namespace graft {
namespace {

namespace fs = std::filesystem;
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

}  // namespace
}  // namespace graft
