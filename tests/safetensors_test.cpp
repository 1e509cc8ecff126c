// safetensors: round trips, a file written by Python's safetensors library, dtype
// conversion, and corrupt files each rejected with a message that names the problem.

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "runtime/safetensors.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using graft::SafetensorsFile;
using graft::SafetensorsTensor;
using graft::testing::read_bytes;
using graft::testing::TempDir;

namespace {

// A file from a header text and a data section, with the 8-byte length in front.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data, int64_t len = -1) {
  const uint64_t n = len < 0 ? header.size() : static_cast<uint64_t>(len);
  std::vector<uint8_t> out(8 + header.size() + data.size());
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>((n >> (8 * i)) & 0xff);
  for (size_t i = 0; i < header.size(); ++i) out[8 + i] = static_cast<uint8_t>(header[i]);
  for (size_t i = 0; i < data.size(); ++i) out[8 + header.size() + i] = data[i];
  return out;
}

// Parses `bytes`, expects a graft::Error whose message holds every one of `parts`.
void expect_rejected(const std::vector<uint8_t>& bytes, const std::vector<std::string>& parts,
                     const std::string& origin = "checkpoint.safetensors") {
  try {
    graft::parse_safetensors(bytes.data(), bytes.size(), origin);
    ADD_FAILURE() << "accepted a corrupt file; expected an error mentioning '" << parts.front() << "'";
  } catch (const graft::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(origin), std::string::npos) << "message does not name the file: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

graft::HostTensor random_tensor() {
  const int rank = graft::testing::random_int(0, 4);
  std::vector<int64_t> dims;
  for (int i = 0; i < rank; ++i) dims.push_back(graft::testing::random_int(i == 1 ? 0 : 1, 7));
  graft::Shape s(dims);
  return graft::HostTensor(s, graft::testing::random_floats(static_cast<size_t>(s.numel()), -100.0f, 100.0f));
}

template <typename T>
void append_le(std::vector<uint8_t>& out, T v) {
  using U = std::conditional_t<sizeof(T) == 1, uint8_t,
            std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
  const U u = std::bit_cast<U>(v);
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>((u >> (8 * i)) & 0xff));
}

}  // namespace

TEST(Safetensors, RoundTripRandomTensorsAndMetadata) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  std::map<std::string, graft::HostTensor> tensors;
  const int count = graft::testing::random_int(1, 12);
  for (int i = 0; i < count; ++i) tensors["layer" + std::to_string(graft::testing::random_int(0, 999)) + ".weight"] = random_tensor();
  tensors["empty"] = graft::HostTensor(graft::Shape{0, 4});
  std::map<std::string, std::string> metadata = {
      {"step", std::to_string(graft::testing::random_int(0, 1 << 30))},
      {"config", "{\"lr\": 0.001, \"name\": \"caf\xc3\xa9 \\\"quoted\\\"\"}"},
      {"empty", ""}};
  graft::write_safetensors(path, tensors, metadata);

  // Layout: data 8-byte aligned, names sorted, data in name order.
  const auto bytes = read_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | bytes[static_cast<size_t>(i)];
  EXPECT_EQ((8 + hlen) % 8, 0u);
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(hlen));
  uint64_t expected_offset = 0;
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(header.contains(name)) << name;
    EXPECT_EQ(header[name]["dtype"], "F32");
    EXPECT_EQ(header[name]["data_offsets"][0].get<uint64_t>(), expected_offset) << name;
    expected_offset += t.values.size() * 4;
  }
  EXPECT_EQ(bytes.size(), 8 + hlen + expected_offset);

  const SafetensorsFile f = graft::read_safetensors(path);
  EXPECT_EQ(f.metadata, metadata);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(f.tensors.count(name)) << name;
    const SafetensorsTensor& st = f.tensors.at(name);
    EXPECT_EQ(st.dtype, "F32");
    EXPECT_EQ(st.shape, t.shape.dims) << name;
    const graft::HostTensor back = st.to_host_tensor();
    EXPECT_EQ(back.shape, t.shape) << name;
    ASSERT_EQ(back.values.size(), t.values.size());
    if (!t.values.empty()) {
      EXPECT_EQ(std::memcmp(back.values.data(), t.values.data(), t.values.size() * sizeof(float)), 0) << name;
    }
  }
  // Overwriting replaces everything, and no metadata means no __metadata__.
  graft::write_safetensors(path, {{"only", graft::HostTensor(graft::Shape{2}, {1.0f, -2.0f})}}, {});
  const SafetensorsFile g = graft::read_safetensors(path);
  EXPECT_TRUE(g.metadata.empty());
  ASSERT_EQ(g.tensors.size(), 1u);
  EXPECT_EQ(g.tensors.at("only").to_floats(), (std::vector<float>{1.0f, -2.0f}));
}

TEST(Safetensors, ReadsFileWrittenByPythonSafetensors) {
  const std::string path = std::string(GRAFT_FIXTURE_DIR) + "/python_written.safetensors";
  const SafetensorsFile f = graft::read_safetensors(path);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("epoch"), "3");
  EXPECT_EQ(f.metadata.at("note").rfind("written by safetensors ", 0), 0u);
  ASSERT_EQ(f.tensors.size(), 7u);

  const auto& w = f.tensors.at("features.0.weight");
  EXPECT_EQ(w.dtype, "F32");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3, 4}));
  const auto wv = w.to_floats();
  ASSERT_EQ(wv.size(), 24u);
  for (size_t i = 0; i < 24; ++i) EXPECT_EQ(wv[i], (static_cast<float>(i) - 12.0f) * 0.25f) << i;

  const auto& b = f.tensors.at("features.0.bias");
  EXPECT_EQ(b.dtype, "F64");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{5}));
  const auto bv = b.to_floats();
  ASSERT_EQ(bv.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(bv[i], static_cast<float>(std::pow(1.5, double(i)) - 3.0)) << i;

  const auto& h = f.tensors.at("classifier.0.half");
  EXPECT_EQ(h.dtype, "F16");
  EXPECT_EQ(h.shape, (std::vector<int64_t>{3, 2}));
  const auto hv = h.to_floats();
  ASSERT_EQ(hv.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(hv[i], static_cast<float>(i) * 0.5f - 1.25f) << i;

  const auto& step = f.tensors.at("step");
  EXPECT_EQ(step.dtype, "I64");
  EXPECT_EQ(step.to_floats(), std::vector<float>{1234567.0f});
  EXPECT_EQ(f.tensors.at("labels").to_floats(), (std::vector<float>{-150, -50, 50, 150}));

  const auto& s = f.tensors.at("scalar");
  EXPECT_TRUE(s.shape.empty());
  const auto sh = s.to_host_tensor();
  EXPECT_EQ(sh.numel(), 1);
  EXPECT_EQ(sh.values, std::vector<float>{-7.5f});

  const auto& e = f.tensors.at("empty");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(e.bytes.empty());
  EXPECT_EQ(e.to_host_tensor().numel(), 0);
}

TEST(Safetensors, ToFloatsConvertsEveryNumericDtype) {
  auto tensor = [](const std::string& dtype, std::vector<uint8_t> bytes, int64_t n) {
    SafetensorsTensor t;
    t.dtype = dtype;
    t.shape = {n};
    t.bytes = std::move(bytes);
    return t;
  };
  const std::vector<float> f = graft::testing::random_floats(5, -1e3f, 1e3f);
  std::vector<uint8_t> b;
  for (float x : f) append_le(b, x);
  EXPECT_EQ(tensor("F32", b, 5).to_floats(), f);

  b.clear();
  for (float x : f) append_le(b, double(x));
  EXPECT_EQ(tensor("F64", b, 5).to_floats(), f);

  // BF16: the top half of an F32; values exactly representable in BF16.
  b.clear();
  std::vector<float> bf;
  for (float x : f) {
    const uint16_t top = static_cast<uint16_t>(std::bit_cast<uint32_t>(x) >> 16);
    append_le(b, top);
    bf.push_back(std::bit_cast<float>(static_cast<uint32_t>(top) << 16));
  }
  EXPECT_EQ(tensor("BF16", b, 5).to_floats(), bf);

  // F16: normal, negative, subnormal, zero, -zero, infinity, largest.
  b.clear();
  for (uint16_t h : {uint16_t{0x3c00}, uint16_t{0xc500}, uint16_t{0x0001}, uint16_t{0x0000}, uint16_t{0x8000},
                     uint16_t{0x7c00}, uint16_t{0x7bff}, uint16_t{0x03ff}})
    append_le(b, h);
  const auto hv = tensor("F16", b, 8).to_floats();
  EXPECT_EQ(hv[0], 1.0f);
  EXPECT_EQ(hv[1], -5.0f);
  EXPECT_EQ(hv[2], std::ldexp(1.0f, -24));
  EXPECT_EQ(hv[3], 0.0f);
  EXPECT_TRUE(std::signbit(hv[4]));
  EXPECT_TRUE(std::isinf(hv[5]));
  EXPECT_EQ(hv[6], 65504.0f);
  EXPECT_EQ(hv[7], std::ldexp(1023.0f, -24));
  b.clear();
  append_le(b, uint16_t{0x7e00});
  EXPECT_TRUE(std::isnan(tensor("F16", b, 1).to_floats()[0]));

  b.clear();
  for (int64_t v : {int64_t{-3}, int64_t{1} << 40}) append_le(b, v);
  EXPECT_EQ(tensor("I64", b, 2).to_floats(), (std::vector<float>{-3.0f, std::ldexp(1.0f, 40)}));
  b.clear();
  for (int32_t v : {-70000, 5}) append_le(b, v);
  EXPECT_EQ(tensor("I32", b, 2).to_floats(), (std::vector<float>{-70000.0f, 5.0f}));
  b.clear();
  for (int16_t v : {int16_t{-300}, int16_t{32767}}) append_le(b, v);
  EXPECT_EQ(tensor("I16", b, 2).to_floats(), (std::vector<float>{-300.0f, 32767.0f}));
  EXPECT_EQ(tensor("I8", {0x80, 0x7f, 0xff}, 3).to_floats(), (std::vector<float>{-128.0f, 127.0f, -1.0f}));
  EXPECT_EQ(tensor("U8", {0, 200, 255}, 3).to_floats(), (std::vector<float>{0.0f, 200.0f, 255.0f}));
  EXPECT_EQ(tensor("BOOL", {0, 1, 0}, 3).to_floats(), (std::vector<float>{0.0f, 1.0f, 0.0f}));

  try {
    tensor("U32", {0, 0, 0, 0}, 1).to_floats();
    FAIL() << "U32 should not convert";
  } catch (const graft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("U32"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ReadsHandWrittenNonF32File) {
  // BF16 and U8 with no metadata, header padded with spaces: what other writers produce.
  std::vector<uint8_t> data;
  append_le(data, uint16_t{0x3f80});  // 1.0
  append_le(data, uint16_t{0xc040});  // -3.0
  data.push_back(7);
  data.push_back(9);
  const std::string header =
      R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"u":{"dtype":"U8","shape":[1,2],"data_offsets":[4,6]}}   )";
  const auto bytes = make_file(header, data);
  const SafetensorsFile f = graft::parse_safetensors(bytes.data(), bytes.size(), "mem");
  EXPECT_TRUE(f.metadata.empty());
  EXPECT_EQ(f.tensors.at("w").to_floats(), (std::vector<float>{1.0f, -3.0f}));
  const auto u = f.tensors.at("u").to_host_tensor();
  EXPECT_EQ(u.shape, (graft::Shape{1, 2}));
  EXPECT_EQ(u.values, (std::vector<float>{7.0f, 9.0f}));
}

TEST(Safetensors, RejectsCorruptFilesWithMessagesNamingTheProblem) {
  const std::vector<uint8_t> d256(256, 0);
  const std::string ok_entry = R"("fc1.weight":{"dtype":"F32","shape":[8,8],"data_offsets":[0,256]})";
  {  // sanity: the base file parses
    const auto bytes = make_file("{" + ok_entry + "}", d256);
    EXPECT_NO_THROW(graft::parse_safetensors(bytes.data(), bytes.size(), "checkpoint.safetensors"));
  }
  // Truncated below the length field.
  expect_rejected({1, 0, 0}, {"too short", "truncated"});
  expect_rejected({}, {"too short"});
  // Header length past the end of the file.
  expect_rejected(make_file("{}", {}, 4000), {"header length 4000", "past the end"});
  // Header length over the limit.
  expect_rejected(make_file("{}", {}, int64_t{1} << 40), {"exceeds the limit"});
  // Not JSON, and JSON that is not an object.
  expect_rejected(make_file("{\"a\": [1, 2", {}), {"not valid JSON"});
  expect_rejected(make_file("[1, 2, 3]", {}), {"not an object"});
  expect_rejected(make_file("{\"fc1.weight\": 5}", {}), {"'fc1.weight'", "not an object"});
  // Offsets past the end of the data (truncated file).
  {
    auto bytes = make_file("{" + ok_entry + "}", d256);
    bytes.resize(bytes.size() - 10);
    expect_rejected(bytes, {"tensor 'fc1.weight' data_offsets [0, 256] run past the end of the data (246 bytes)",
                            "truncated"});
  }
  // Overlapping byte ranges.
  expect_rejected(make_file(R"({"a":{"dtype":"F32","shape":[32],"data_offsets":[0,128]},)"
                            R"("b":{"dtype":"F32","shape":[32],"data_offsets":[64,192]}})",
                            d256),
                  {"'b'", "'a'", "overlap"});
  // dtype / shape / byte count disagreement.
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F16","shape":[8,8],"data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "F16", "[8,8]", "128 bytes", "hold 256 bytes"});
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":[8,9],"data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "72 elements"});
  // Shapes: negative, fractional, not an array, overflowing.
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":[8,-8],"data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "negative dimension -8"});
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":[8,2.5],"data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "2.5", "not a non-negative integer"});
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":"8x8","data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "shape", "not an array"});
  expect_rejected(make_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,256]}})",
                            d256),
                  {"'x'", "overflows"});
  expect_rejected(make_file(R"({"x":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,256]}})", d256),
                  {"'x'", "overflows"});
  // dtype problems.
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F42","shape":[8,8],"data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "unknown dtype 'F42'"});
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":4,"shape":[8,8],"data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "dtype", "not a string"});
  expect_rejected(make_file(R"({"fc1.weight":{"shape":[8,8],"data_offsets":[0,256]}})", d256),
                  {"'fc1.weight'", "no dtype"});
  // Offsets problems.
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":[8,8]}})", d256), {"'fc1.weight'", "no data_offsets"});
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":[8,8],"data_offsets":[0]}})", d256),
                  {"'fc1.weight'", "not two non-negative integers"});
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":[8,8],"data_offsets":[-4,252]}})", d256),
                  {"'fc1.weight'", "not two non-negative integers"});
  expect_rejected(make_file(R"({"fc1.weight":{"dtype":"F32","shape":[0],"data_offsets":[200,100]}})", d256),
                  {"'fc1.weight'", "end before they begin"});
  // Metadata must map strings to strings.
  expect_rejected(make_file(R"({"__metadata__":{"epoch":3}})", {}), {"__metadata__", "'epoch'", "not a string"});
  expect_rejected(make_file(R"({"__metadata__":["a"]})", {}), {"__metadata__", "not an object"});
}

TEST(Safetensors, RandomByteDamageIsRejectedCleanlyOrParses) {
  // Flipping bytes anywhere must never crash or read out of bounds: either the file still
  // parses or a graft::Error explains why not.
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  graft::write_safetensors(path, {{"a", random_tensor()}, {"b.weight", random_tensor()}, {"c", random_tensor()}},
                           {{"k", "v"}});
  const auto good = read_bytes(path);
  int rejected = 0;
  for (int trial = 0; trial < 400; ++trial) {
    auto bytes = good;
    const int flips = graft::testing::random_int(1, 4);
    for (int i = 0; i < flips; ++i) {
      // Mostly the length and header, where the structure is.
      const size_t limit = std::min<size_t>(bytes.size(), 8 + 200);
      bytes[static_cast<size_t>(graft::testing::random_int(0, static_cast<int>(limit) - 1))] =
          static_cast<uint8_t>(graft::testing::random_int(0, 255));
    }
    if (graft::testing::random_int(0, 3) == 0) bytes.resize(static_cast<size_t>(graft::testing::random_int(0, static_cast<int>(bytes.size()))));
    try {
      graft::parse_safetensors(bytes.data(), bytes.size(), "damaged");
    } catch (const graft::Error& e) {
      ++rejected;
      EXPECT_NE(std::string(e.what()).find("damaged"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(Safetensors, ReadMissingFileNamesPath) {
  TempDir dir;
  const std::string path = dir.file("nope.safetensors");
  try {
    graft::read_safetensors(path);
    FAIL() << "expected graft::Error";
  } catch (const graft::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  // An empty file is a truncated one.
  { std::ofstream(dir.file("empty.safetensors")); }
  EXPECT_THROW(graft::read_safetensors(dir.file("empty.safetensors")), graft::Error);
}

TEST(Safetensors, WriteRejectsInconsistentTensorAndKeepsOldFile) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  graft::write_safetensors(path, {{"a", graft::HostTensor(graft::Shape{2}, {1.0f, 2.0f})}}, {});
  const auto before = read_bytes(path);
  graft::HostTensor bad(graft::Shape{3, 3});
  bad.values.resize(5);
  try {
    graft::write_safetensors(path, {{"bad", bad}}, {});
    FAIL() << "expected graft::Error";
  } catch (const graft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_THROW(graft::write_safetensors(dir.file("gone/m.safetensors"), {{"a", random_tensor()}}, {}), graft::Error);
}
