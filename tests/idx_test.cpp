// IDX files: generated plain and gzip files read back exactly; truncated, mislabelled and
// oversized files refused with a message naming the file and the problem.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/error.h"
#include "runtime/idx.h"
#include "tests/idx_writing.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using graft::testing::expect_error;
using graft::testing::idx_bytes;
using graft::testing::read_bytes;
using graft::testing::TempDir;
using graft::testing::write_gzip;
using graft::testing::write_plain;

namespace {

std::vector<uint8_t> random_bytes(size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(graft::testing::random_int(0, 255));
  return v;
}

}  // namespace

TEST(Idx, RoundTripPlainAndGzip) {
  TempDir dir;
  for (int trial = 0; trial < 6; ++trial) {
    const int rank = 1 + trial % 4;
    std::vector<uint32_t> dims;
    size_t numel = 1;
    for (int i = 0; i < rank; ++i) {
      dims.push_back(static_cast<uint32_t>(graft::testing::random_int(1, rank == 1 ? 5000 : 30)));
      numel *= dims.back();
    }
    const auto data = random_bytes(numel);
    const auto bytes = idx_bytes(dims, data);
    std::string name = "a";
    name += std::to_string(trial);
    name += "-idx";
    const std::string plain = dir.file(name);
    const std::string gz = plain + ".gz";
    write_plain(plain, bytes);
    write_gzip(gz, bytes);
    const std::vector<int64_t> want_dims(dims.begin(), dims.end());
    for (const auto& path : {plain, gz}) {
      const graft::IdxArray a = graft::read_idx(path);
      EXPECT_EQ(a.dims, want_dims) << path;
      EXPECT_EQ(a.data, data) << path;
    }
    const graft::IdxArray p = graft::parse_idx(bytes.data(), bytes.size(), "mem");
    EXPECT_EQ(p.dims, want_dims);
    EXPECT_EQ(p.data, data);
  }
  // A zero-sized dimension is a valid, empty array.
  const auto empty = idx_bytes({0, 28, 28}, {});
  write_gzip(dir.file("empty.gz"), empty);
  const graft::IdxArray e = graft::read_idx(dir.file("empty.gz"));
  EXPECT_EQ(e.dims, (std::vector<int64_t>{0, 28, 28}));
  EXPECT_TRUE(e.data.empty());
}

TEST(Idx, TruncatedFilesReportExpectedAndActualSize) {
  TempDir dir;
  const auto data = random_bytes(3 * 10 * 10);
  auto bytes = idx_bytes({3, 10, 10}, data);
  bytes.resize(bytes.size() - 37);  // 263 of 300 data bytes
  const std::string plain = dir.file("t-idx3-ubyte");
  write_plain(plain, bytes);
  write_gzip(plain + ".gz", bytes);
  for (const auto& path : {plain, plain + ".gz"})
    expect_error([&] { graft::read_idx(path); }, {path, "truncated", "need 300 bytes", "263"});
  expect_error([&] { graft::parse_idx(bytes.data(), bytes.size(), "mem.idx"); },
               {"mem.idx", "truncated", "need 300 bytes", "263"});

  // Header cut inside the dimensions.
  const auto head = idx_bytes({3, 10, 10}, {});
  write_plain(dir.file("h"), std::vector<uint8_t>(head.begin(), head.begin() + 9));
  expect_error([&] { graft::read_idx(dir.file("h")); }, {"header truncated", "16 bytes"});
  write_plain(dir.file("tiny"), {0, 0});
  expect_error([&] { graft::read_idx(dir.file("tiny")); }, {"too short"});

  // A gzip stream cut in the middle of the compressed data.
  const auto big = idx_bytes({50, 28, 28}, random_bytes(50 * 28 * 28));
  write_gzip(dir.file("cut.gz"), big);
  auto gz = read_bytes(dir.file("cut.gz"));
  gz.resize(gz.size() / 2);
  write_plain(dir.file("cut.gz"), gz);
  expect_error([&] { graft::read_idx(dir.file("cut.gz")); }, {dir.file("cut.gz")});
}

TEST(Idx, TrailingGarbageIsRejected) {
  TempDir dir;
  auto bytes = idx_bytes({4}, {1, 2, 3, 4});
  bytes.push_back(9);
  bytes.push_back(9);
  write_plain(dir.file("g"), bytes);
  write_gzip(dir.file("g.gz"), bytes);
  for (const auto& path : {dir.file("g"), dir.file("g.gz")})
    expect_error([&] { graft::read_idx(path); }, {path, "2 bytes of trailing garbage"});
  expect_error([&] { graft::parse_idx(bytes.data(), bytes.size(), "m"); }, {"2 bytes of trailing garbage"});
}

TEST(Idx, BadMagicTypeAndRankAreRejected) {
  const auto png = std::vector<uint8_t>{0x89, 'P', 'N', 'G', 0, 0, 0, 1};
  expect_error([&] { graft::parse_idx(png.data(), png.size(), "pic.png"); }, {"pic.png", "not an IDX file"});
  const auto floats = idx_bytes({2}, {0, 0, 0, 0, 0, 0, 0, 0}, 0x0D);
  expect_error([&] { graft::parse_idx(floats.data(), floats.size(), "f.idx"); }, {"f.idx", "0x0d", "not supported"});
  const std::vector<uint8_t> rank0 = {0, 0, 8, 0};
  expect_error([&] { graft::parse_idx(rank0.data(), rank0.size(), "r0"); }, {"rank 0"});
  const auto rank5 = idx_bytes({1, 1, 1, 1, 1}, {7});
  expect_error([&] { graft::parse_idx(rank5.data(), rank5.size(), "r5"); }, {"rank 5"});
  const std::vector<uint8_t> gz = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
  expect_error([&] { graft::parse_idx(gz.data(), gz.size(), "z"); }, {"gzip"});
}

TEST(Idx, OverflowingDimensionsAreRefusedBeforeAllocating) {
  TempDir dir;
  // 2^16 * 2^16 * 2 = 2^33 elements: over the limit; 4 x (2^32-1): the product overflows 64 bits.
  const auto big = idx_bytes({65536, 65536, 2}, {1, 2, 3});
  expect_error([&] { graft::parse_idx(big.data(), big.size(), "big"); }, {"big", "65536 x 65536 x 2", "2^32"});
  const auto huge = idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {});
  write_gzip(dir.file("huge.gz"), huge);
  expect_error([&] { graft::read_idx(dir.file("huge.gz")); }, {"huge.gz", "2^32"});
  // Large but allowed dimensions with little data: truncated, without allocating gigabytes.
  const auto lie = idx_bytes({50000, 280, 280}, random_bytes(1000));
  write_gzip(dir.file("lie.gz"), lie);
  expect_error([&] { graft::read_idx(dir.file("lie.gz")); }, {"truncated", "3920000000"});
}

TEST(Idx, MissingFileNamesPath) {
  TempDir dir;
  const std::string path = dir.file("train-images-idx3-ubyte");
  expect_error([&] { graft::read_idx(path); }, {path});
  expect_error([&] { graft::read_idx(dir.path.string()); }, {"directory"});
}
