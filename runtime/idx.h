// IDX files (MNIST, Fashion-MNIST): magic 0x0000 TT DD (TT = element type, DD = rank), DD
// big-endian uint32 dimensions, then the data. Read plain or gzip-compressed (zlib).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace graft {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // only unsigned-byte (type 0x08) files are needed and accepted
};

// Throws graft::Error naming the path and the problem (missing, not IDX, truncated,
// dimensions whose product overflows or exceeds the limit) before any large allocation.
IdxArray read_idx(const std::string& path);
IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& origin);

}  // namespace graft
