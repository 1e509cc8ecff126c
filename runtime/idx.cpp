// IDX reading: header validated (type, rank, dimensions) before the data is allocated.
#include "runtime/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/error.h"

namespace graft {

namespace {

constexpr uint64_t kIdxMaxElements = 1ull << 32;
constexpr int kIdxMaxRank = 4;

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex(uint64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", width, static_cast<unsigned long long>(v));
  return buf;
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += " x ";
    s += std::to_string(dims[i]);
  }
  return s;
}

// Checks the 4-byte magic; returns the rank.
int check_magic(const uint8_t* p, const std::string& origin) {
  if (p[0] == 0x1f && p[1] == 0x8b)
    fail(origin, ": gzip-compressed data where an uncompressed IDX file was expected");
  if (p[0] != 0 || p[1] != 0)
    fail(origin, ": not an IDX file (magic ", hex(be32(p), 8), "; an IDX file starts 0x0000TTDD)");
  if (p[2] != 0x08)
    fail(origin, ": IDX element type ", hex(p[2], 2),
         " is not supported (only unsigned bytes, type 0x08, as in MNIST and Fashion-MNIST)");
  const int rank = p[3];
  if (rank < 1 || rank > kIdxMaxRank)
    fail(origin, ": IDX rank ", rank, " is not supported (1 to ", kIdxMaxRank, " dimensions)");
  return rank;
}

// Parses `rank` big-endian dimensions; returns the element count, refusing overflow and
// arrays over the limit.
uint64_t parse_dims(const uint8_t* p, int rank, std::vector<int64_t>& dims, const std::string& origin) {
  uint64_t numel = 1;
  bool too_big = false;
  dims.clear();
  for (int i = 0; i < rank; ++i) {
    const uint32_t d = be32(p + 4 * i);
    dims.push_back(d);
    if (__builtin_mul_overflow(numel, uint64_t{d}, &numel)) too_big = true;
  }
  if (too_big || numel > kIdxMaxElements)
    fail(origin, ": IDX dimensions ", dims_text(dims), " hold more than 2^32 elements; the file is corrupt");
  return numel;
}

}  // namespace

IdxArray parse_idx(const uint8_t* data, size_t size, const std::string& origin) {
  if (size < 4)
    fail(origin, ": only ", size, " bytes, too short to be an IDX file (4-byte magic, then dimensions)");
  const int rank = check_magic(data, origin);
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (size < header)
    fail(origin, ": IDX header truncated: ", rank, " dimensions need ", header, " bytes, the file has ", size);
  IdxArray out;
  const uint64_t numel = parse_dims(data + 4, rank, out.dims, origin);
  const uint64_t available = size - header;
  if (available < numel)
    fail(origin, ": IDX data truncated: dimensions ", dims_text(out.dims), " need ", numel,
         " bytes of data, the file has ", available, " (expected ", header + numel, " bytes in all, found ", size, ")");
  if (available > numel)
    fail(origin, ": ", available - numel, " bytes of trailing garbage after the ", numel,
         " data bytes that dimensions ", dims_text(out.dims), " hold; the file is corrupt");
  out.data.assign(data + header, data + header + numel);
  return out;
}

IdxArray read_idx(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, ": is a directory, not an IDX file");
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    const int err = errno;
    fail(path, ": cannot open IDX file: ", err ? std::strerror(err) : "out of memory");
  }
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};

  // Reads up to n bytes; returns how many were read, or throws on a read/decompression error.
  auto read_some = [&](uint8_t* dst, uint64_t n) -> uint64_t {
    uint64_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n - got, 1u << 30));
      const int r = gzread(f, dst + got, chunk);
      if (r < 0) {
        int zerr = 0;
        const char* msg = gzerror(f, &zerr);
        if (zerr == Z_ERRNO) fail(path, ": read failed: ", std::strerror(errno));
        fail(path, ": corrupt gzip data (", msg ? msg : "unknown zlib error", ")");
      }
      if (r == 0) break;
      got += static_cast<uint64_t>(r);
    }
    return got;
  };
  auto truncated_gzip_note = [&]() -> std::string {
    int zerr = 0;
    gzerror(f, &zerr);
    return zerr == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
  };

  uint8_t head[4 + 4 * kIdxMaxRank];
  uint64_t got = read_some(head, 4);
  if (got < 4)
    fail(path, ": only ", got, " bytes, too short to be an IDX file (4-byte magic, then dimensions)",
         truncated_gzip_note());
  const int rank = check_magic(head, path);
  const uint64_t header = 4 + 4 * static_cast<uint64_t>(rank);
  got += read_some(head + 4, header - 4);
  if (got < header)
    fail(path, ": IDX header truncated: ", rank, " dimensions need ", header, " bytes, the file has ", got,
         truncated_gzip_note());

  IdxArray out;
  const uint64_t numel = parse_dims(head + 4, rank, out.dims, path);
  // Grow with the data actually present, so a corrupt header promising gigabytes costs
  // only what the file really holds.
  uint64_t data_got = 0;
  while (data_got < numel) {
    const uint64_t chunk = std::min<uint64_t>(numel - data_got, 16ull << 20);
    out.data.resize(static_cast<size_t>(data_got + chunk));
    const uint64_t r = read_some(out.data.data() + data_got, chunk);
    data_got += r;
    if (r < chunk) break;
  }
  out.data.resize(static_cast<size_t>(data_got));
  if (data_got < numel)
    fail(path, ": IDX data truncated: dimensions ", dims_text(out.dims), " need ", numel, " bytes of data, found ",
         data_got, " (expected ", header + numel, " bytes in all, found ", header + data_got, ")",
         truncated_gzip_note());
  uint8_t extra[4096];
  const uint64_t extra_got = read_some(extra, sizeof extra);
  if (extra_got > 0)
    fail(path, ": ", extra_got == sizeof extra ? "at least " : "", extra_got,
         " bytes of trailing garbage after the ", numel, " data bytes that dimensions ", dims_text(out.dims),
         " hold; the file is corrupt");
  return out;
}

}  // namespace graft
