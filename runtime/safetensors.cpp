// safetensors reading (fully validated before any allocation sized by the file) and writing.
#include "runtime/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/atomic_file.h"
#include "base/error.h"

namespace graft {

namespace {

using json = nlohmann::json;

// Element size in bytes of every dtype the format defines; 0 for an unknown name.
size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},    {"U32", 4},     {"F32", 4},
      {"I64", 8},  {"U64", 8}, {"F64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

const char* kKnownDtypes = "BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64";

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

template <typename T>
T load_le(const uint8_t* p) {
  using U = std::conditional_t<sizeof(T) == 1, uint8_t,
            std::conditional_t<sizeof(T) == 2, uint16_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;
  U u = 0;
  for (size_t i = sizeof(T); i-- > 0;) u = static_cast<U>((u << 8) | p[i]);
  return std::bit_cast<T>(u);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf or NaN
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

std::string json_kind(const json& j) { return j.type_name(); }

std::string shape_text(const json& shape) { return shape.dump(); }

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

}  // namespace

std::vector<float> SafetensorsTensor::to_floats() const {
  const size_t es = dtype_size(dtype);
  if (es == 0) fail("safetensors: unknown dtype '", dtype, "'");
  if (bytes.size() % es != 0)
    fail("safetensors: ", bytes.size(), " bytes is not a whole number of ", dtype, " elements");
  const size_t n = bytes.size() / es;
  std::vector<float> out(n);
  const uint8_t* p = bytes.data();
  if (dtype == "F32") {
    for (size_t i = 0; i < n; ++i) out[i] = load_le<float>(p + 4 * i);
  } else if (dtype == "F64") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<double>(p + 8 * i));
  } else if (dtype == "F16") {
    for (size_t i = 0; i < n; ++i) out[i] = half_to_float(load_le<uint16_t>(p + 2 * i));
  } else if (dtype == "BF16") {
    for (size_t i = 0; i < n; ++i)
      out[i] = std::bit_cast<float>(static_cast<uint32_t>(load_le<uint16_t>(p + 2 * i)) << 16);
  } else if (dtype == "I64") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<int64_t>(p + 8 * i));
  } else if (dtype == "I32") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<int32_t>(p + 4 * i));
  } else if (dtype == "I16") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<int16_t>(p + 2 * i));
  } else if (dtype == "I8") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int8_t>(p[i]));
  } else if (dtype == "U8") {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
  } else if (dtype == "BOOL") {
    for (size_t i = 0; i < n; ++i) out[i] = p[i] ? 1.0f : 0.0f;
  } else {
    fail("safetensors: cannot convert dtype ", dtype,
         " to float (supported: F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
  }
  return out;
}

HostTensor SafetensorsTensor::to_host_tensor() const {
  for (int64_t d : shape)
    if (d < 0) fail("safetensors: negative dimension in shape");
  HostTensor t(Shape(shape), to_floats());
  if (static_cast<int64_t>(t.values.size()) != t.shape.numel())
    fail("safetensors: ", t.values.size(), " values do not fill shape ", t.shape.str());
  return t;
}

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& origin) {
  const std::string& o = origin;
  if (size < 8)
    fail(o, ": only ", size, " bytes, too short to be a safetensors file (it starts with an 8-byte header length); "
         "the file is truncated or not a safetensors file");
  const uint64_t header_len = read_le64(data);
  if (header_len > kSafetensorsMaxHeaderBytes)
    fail(o, ": header length ", header_len, " bytes exceeds the limit of ", kSafetensorsMaxHeaderBytes,
         " bytes; the file is corrupt or not a safetensors file");
  if (header_len > size - 8)
    fail(o, ": header length ", header_len, " bytes runs past the end of the file (", size - 8,
         " bytes after the length); the file is truncated or not a safetensors file");
  if (header_len < 2)
    fail(o, ": header of ", header_len, " bytes cannot hold a JSON object; the file is corrupt");

  const char* hbegin = reinterpret_cast<const char*>(data + 8);
  json header;
  try {
    header = json::parse(hbegin, hbegin + header_len);
  } catch (const json::exception& e) {
    fail(o, ": header is not valid JSON (", e.what(), "); the file is corrupt or not a safetensors file");
  }
  if (!header.is_object())
    fail(o, ": header is a JSON ", json_kind(header), ", not an object; the file is corrupt");

  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* data_section = data + 8 + header_len;

  SafetensorsFile file;
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(o, ": __metadata__ is a JSON ", json_kind(v), ", not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(o, ": __metadata__ entry '", m.key(), "' is a JSON ", json_kind(m.value()),
               ", not a string (safetensors metadata maps strings to strings)");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string t = o + ": tensor '" + name + "'";
    if (!v.is_object()) fail(t, " is described by a JSON ", json_kind(v), ", not an object");

    Entry e;
    e.name = name;
    const auto dt = v.find("dtype");
    if (dt == v.end()) fail(t, " has no dtype");
    if (!dt->is_string()) fail(t, " has a dtype that is a JSON ", json_kind(*dt), ", not a string");
    e.dtype = dt->get<std::string>();
    const size_t esize = dtype_size(e.dtype);
    if (esize == 0) fail(t, " has unknown dtype '", e.dtype, "' (known: ", kKnownDtypes, ")");

    const auto sh = v.find("shape");
    if (sh == v.end()) fail(t, " has no shape");
    if (!sh->is_array()) fail(t, " has a shape that is a JSON ", json_kind(*sh), ", not an array");
    uint64_t numel = 1;
    for (size_t i = 0; i < sh->size(); ++i) {
      const json& d = (*sh)[i];
      if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
        fail(t, " has negative dimension ", d.get<int64_t>(), " at index ", i, " of shape ", shape_text(*sh));
      if (!d.is_number_unsigned())
        fail(t, " has dimension ", d.dump(), " at index ", i, " of shape ", shape_text(*sh),
             ", not a non-negative integer");
      const uint64_t du = d.get<uint64_t>();
      if (du > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          __builtin_mul_overflow(numel, du, &numel) ||
          numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(t, " has shape ", shape_text(*sh), " whose element count overflows");
      e.shape.push_back(static_cast<int64_t>(du));
    }

    const auto off = v.find("data_offsets");
    if (off == v.end()) fail(t, " has no data_offsets");
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
      fail(t, " has data_offsets ", off->dump(), ", not two non-negative integers [begin, end]");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end)
      fail(t, " has data_offsets [", e.begin, ", ", e.end, "] that end before they begin; the file is corrupt");
    if (e.end > data_size)
      fail(t, " data_offsets [", e.begin, ", ", e.end, "] run past the end of the data (", data_size,
           " bytes); the file is truncated or corrupt");
    uint64_t expected = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(esize), &expected))
      fail(t, " has shape ", shape_text(*sh), " whose byte count overflows");
    if (expected != e.end - e.begin)
      fail(t, " has dtype ", e.dtype, " and shape ", shape_text(*sh), " (", numel, " elements, ", expected,
           " bytes) but data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin,
           " bytes; the file is corrupt");
    entries.push_back(std::move(e));
  }

  // No two tensors may share bytes (empty tensors occupy none).
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const Entry* a, const Entry* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const Entry* a = by_offset[i - 1];
    const Entry* b = by_offset[i];
    if (b->begin < a->end)
      fail(o, ": tensor '", b->name, "' data_offsets [", b->begin, ", ", b->end, "] overlap those of tensor '",
           a->name, "' [", a->begin, ", ", a->end, "]; the file is corrupt");
  }

  // Everything checked: copy the data out.
  for (Entry& e : entries) {
    SafetensorsTensor st;
    st.dtype = std::move(e.dtype);
    st.shape = std::move(e.shape);
    st.bytes.assign(data_section + e.begin, data_section + e.end);
    file.tensors.emplace(e.name, std::move(st));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(path, ": cannot open safetensors file: ", std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, ": cannot stat: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return parse_safetensors(nullptr, 0, path);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map != MAP_FAILED) {
    ::close(fd);
    struct Unmap {
      void* p;
      size_t n;
      ~Unmap() { ::munmap(p, n); }
    } unmap{map, size};
    return parse_safetensors(static_cast<const uint8_t*>(map), size, path);
  }
  // Fall back to reading (file systems without mmap).
  std::vector<uint8_t> buf(size);
  size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, buf.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      if (n == 0) fail(path, ": file shrank while reading (", got, " of ", size, " bytes)");
      fail(path, ": read failed: ", std::strerror(err));
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return parse_safetensors(buf.data(), size, path);
}

void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {  // std::map: names sorted
    if (name == "__metadata__") fail(path, ": a tensor cannot be named '__metadata__'");
    for (int64_t d : t.shape.dims)
      if (d < 0) fail(path, ": tensor '", name, "' has negative dimension in shape ", t.shape.str());
    if (static_cast<int64_t>(t.values.size()) != t.shape.numel())
      fail(path, ": tensor '", name, "' has ", t.values.size(), " values but shape ", t.shape.str(), " needs ",
           t.shape.numel());
    const uint64_t bytes = static_cast<uint64_t>(t.values.size()) * sizeof(float);
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = "F32";
    entry["shape"] = t.shape.dims;
    entry["data_offsets"] = {offset, offset + bytes};
    header[name] = std::move(entry);
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump(-1, ' ', false, json::error_handler_t::replace);  // metadata may hold non-UTF-8 paths
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": cannot write the safetensors header: a tensor name or metadata string is not valid UTF-8 (",
         e.what(), ")");
  }
  // Pad with spaces so the data starts 8-byte aligned (the format allows trailing spaces).
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  if (text.size() > kSafetensorsMaxHeaderBytes)
    fail(path, ": safetensors header would be ", text.size(), " bytes, over the limit of ",
         kSafetensorsMaxHeaderBytes);

  char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xffu);

  std::vector<std::string_view> chunks;
  chunks.emplace_back(len, 8);
  chunks.emplace_back(text);
  std::vector<std::vector<char>> swapped;  // only on big-endian hosts
  for (const auto& [name, t] : tensors) {
    if (t.values.empty()) continue;
    if constexpr (std::endian::native == std::endian::little) {
      chunks.emplace_back(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
    } else {
      std::vector<char> le(t.values.size() * sizeof(float));
      for (size_t i = 0; i < t.values.size(); ++i) {
        const uint32_t u = std::bit_cast<uint32_t>(t.values[i]);
        for (int b = 0; b < 4; ++b) le[4 * i + static_cast<size_t>(b)] = static_cast<char>((u >> (8 * b)) & 0xffu);
      }
      swapped.push_back(std::move(le));
      chunks.emplace_back(swapped.back().data(), swapped.back().size());
    }
  }
  write_file_atomic(path, chunks);
}

}  // namespace graft
