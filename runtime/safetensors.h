// safetensors: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {"key": "string value"}}, then the raw little-endian data.
// Every offset, size, shape and dtype is checked against the file before it is used.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace graft {

struct SafetensorsTensor {
  std::string dtype;            // "F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;   // raw little-endian data

  // Converts F32, F64, F16, BF16, I64, I32, I16, I8, U8 and BOOL to float;
  // throws graft::Error naming the dtype otherwise.
  std::vector<float> to_floats() const;
  HostTensor to_host_tensor() const;
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, SafetensorsTensor> tensors;
};

// Parses a whole file held in memory. `origin` (a path) is named in every error.
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& origin);
SafetensorsFile read_safetensors(const std::string& path);

// Writes F32 tensors (names sorted) and string metadata, atomically (runtime/atomic_file.h).
void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Limits checked before any large allocation.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull << 20;

}  // namespace graft
