// stb_image / stb_image_resize wrappers. This is the one translation unit that compiles
// the stb implementations (graft does not link Debian's libstb).
#include "runtime/image_decode.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/error.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#define STBI_NO_STDIO  // graft reads files itself, so every error path is its own
// Only the formats the image folder collects: less decoder code exposed to hostile files.
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image_resize.h>
#pragma GCC diagnostic pop

namespace graft {

namespace {

struct StbiFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

bool starts_with(const uint8_t* data, size_t size, std::initializer_list<uint8_t> magic) {
  if (size < magic.size()) return false;
  return std::equal(magic.begin(), magic.end(), data);
}

// Where a JPEG's segments start (just after its SOI marker), or 0 when the bytes are not a
// JPEG as stb_image sees one: it skips any number of 0xFF fill bytes before the SOI code.
size_t jpeg_start(const uint8_t* data, size_t size) {
  if (size < 2 || data[0] != 0xFF) return 0;
  size_t i = 0;
  while (i < size && data[i] == 0xFF) ++i;
  return i < size && data[i] == 0xD8 ? i + 1 : 0;
}

// stb_image 2.27 trusts a JPEG Huffman table's code counts: more than 256 codes overflow
// its tables (fixed in 2.28). Walks the marker segments as stb does, entropy-coded data
// included, and rejects such tables before stb sees them. Returns the reason or "".
std::string jpeg_huffman_problem(const uint8_t* data, size_t size) {
  auto byte = [&](size_t i) -> unsigned { return i < size ? data[i] : 0u; };  // stb reads 0 past the end
  size_t i = jpeg_start(data, size);
  if (i == 0) return {};
  while (i < size) {
    if (data[i] != 0xFF) {  // stb skips junk between segments looking for the next marker
      ++i;
      continue;
    }
    while (i < size && data[i] == 0xFF) ++i;
    if (i >= size) return {};
    const unsigned m = data[i++];
    if (m == 0xD9) return {};
    if (m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue;
    const size_t len = byte(i) << 8 | byte(i + 1);
    if (len < 2) return {};
    const size_t seg_end = i + len;
    if (m == 0xC4) {
      for (size_t p = i + 2; p < seg_end && p < size;) {
        size_t n = 0;
        for (size_t k = 1; k <= 16; ++k) n += byte(p + k);
        if (n > 256) return detail::concat("corrupt JPEG (a Huffman table declares ", n, " codes, at most 256 exist)");
        p += 17 + n;
      }
    }
    i = seg_end;
    if (m == 0xDA) {  // entropy-coded data runs to the next marker that is not a restart
      while (i + 1 < size && !(data[i] == 0xFF && data[i + 1] != 0 && !(data[i + 1] >= 0xD0 && data[i + 1] <= 0xD7)))
        ++i;
    }
  }
  return {};
}

// stb_image 2.27 copies a PNG's image data chunk by chunk into a buffer it allocates at the
// first non-empty IDAT; an empty IDAT before that makes it memcpy 0 bytes to a null pointer
// (undefined behaviour, found by fuzz_image). Such files are refused before decoding.
std::string png_problem(const uint8_t* data, size_t size) {
  size_t at = 8;  // after the signature: chunks of length (4, big-endian), type (4), data, CRC (4)
  while (at + 8 <= size) {
    const uint32_t length = uint32_t(data[at]) << 24 | uint32_t(data[at + 1]) << 16 | uint32_t(data[at + 2]) << 8 |
                            uint32_t(data[at + 3]);
    const uint8_t* type = data + at + 4;
    if (std::equal(type, type + 4, "IDAT"))
      return length == 0 ? "PNG whose first image-data (IDAT) chunk is empty, which stb_image cannot read safely; "
                           "re-save the image"
                         : std::string();
    if (std::equal(type, type + 4, "IEND")) return {};
    at += size_t(length) + 12;
  }
  return {};
}

// stb_image decodes some truncated files without complaint, filling the missing part with
// gray or black. These checks catch the common cases from the container structure.
// Returns the reason, or an empty string when the file looks complete.
std::string truncation_reason(const uint8_t* data, size_t size) {
  if (jpeg_start(data, size) != 0) {
    // JPEG: entropy-coded data stuffs every 0xFF byte (FF 00), so FF DA (start of scan) and
    // FF D9 (end of image) occur only as markers. The image is complete when an end marker
    // follows the last start of scan; trailing bytes after it are allowed.
    size_t last_sos = SIZE_MAX;
    for (size_t i = size - 1; i-- > 0;) {
      if (data[i] == 0xFF && data[i + 1] == 0xDA) {
        last_sos = i;
        break;
      }
    }
    if (last_sos == SIZE_MAX) return "truncated JPEG (no start-of-scan marker)";
    for (size_t i = last_sos + 2; i + 1 < size; ++i)
      if (data[i] == 0xFF && data[i + 1] == 0xD9) return {};
    return "truncated JPEG (no end-of-image marker after the image data)";
  }
  if (starts_with(data, size, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})) {
    static const char kIend[] = "IEND";
    const auto* end = data + size;
    if (std::search(data, end, kIend, kIend + 4) == end) return "truncated PNG (no IEND chunk)";
    return {};
  }
  if (starts_with(data, size, {'B', 'M'}) && size >= 6) {
    const uint32_t declared = uint32_t(data[2]) | uint32_t(data[3]) << 8 | uint32_t(data[4]) << 16 |
                              uint32_t(data[5]) << 24;
    if (declared > size)
      return detail::concat("truncated BMP (header says ", declared, " bytes, file has ", size, ")");
    return {};
  }
  return {};
}

}  // namespace

bool declared_image_size(const uint8_t* data, size_t size, int* width, int* height) {
  int comp = 0;
  if (!data || size == 0 || size > size_t(INT_MAX)) return false;
  // stb_image's header parser builds JPEG Huffman tables too: the same guard as decoding.
  if (!jpeg_huffman_problem(data, size).empty()) return false;
  return stbi_info_from_memory(data, static_cast<int>(size), width, height, &comp) != 0;
}

RgbImage decode_image_memory(const uint8_t* data, size_t size, const std::string& origin) {
  if (size == 0 || data == nullptr) fail("image ", origin, ": the file is empty (0 bytes)");
  if (size > size_t(INT_MAX))
    fail("image ", origin, ": ", size, " bytes is larger than the 2 GiB an encoded image may have");
  const int len = static_cast<int>(size);

  if (const std::string why = jpeg_huffman_problem(data, size); !why.empty()) fail("image ", origin, ": ", why);
  if (starts_with(data, size, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})) {
    const std::string why = png_problem(data, size);
    if (!why.empty()) fail("image ", origin, ": ", why);
  }

  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    fail("image ", origin, ": not a readable image (stb_image: ", why ? why : "unknown format",
         "); supported formats: JPEG (baseline and progressive), PNG, BMP, GIF (first frame), TGA");
  }
  if (w < 1 || h < 1) fail("image ", origin, ": invalid dimensions ", w, "x", h);
  if (w > kMaxImageSide || h > kMaxImageSide)
    fail("image ", origin, ": ", w, "x", h, " pixels is larger than the ", kMaxImageSide,
         "-pixel side limit (corrupt header, or resize the image first)");

  const std::string truncated = truncation_reason(data, size);
  if (!truncated.empty()) fail("image ", origin, ": ", truncated);

  int dw = 0, dh = 0, dcomp = 0;
  std::unique_ptr<stbi_uc, StbiFree> pixels(stbi_load_from_memory(data, len, &dw, &dh, &dcomp, 3));
  if (!pixels) {
    const char* why = stbi_failure_reason();
    fail("image ", origin, ": cannot decode (stb_image: ", why ? why : "unknown error",
         "); the file is corrupt or truncated");
  }
  if (dw != w || dh != h)
    fail("image ", origin, ": decoded size ", dw, "x", dh, " differs from the header's ", w, "x", h);

  RgbImage img;
  img.width = dw;
  img.height = dh;
  const size_t n = size_t(dw) * size_t(dh) * 3;
  img.pixels.assign(pixels.get(), pixels.get() + n);
  return img;
}

RgbImage decode_image_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) fail("image ", path, ": cannot open (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  for (;;) {
    const size_t got = std::fread(chunk, 1, sizeof chunk, f.get());
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof chunk) break;
    if (bytes.size() > size_t(INT_MAX)) fail("image ", path, ": larger than 2 GiB, not an image graft can decode");
  }
  if (std::ferror(f.get())) fail("image ", path, ": read error (", std::strerror(errno), ")");
  return decode_image_memory(bytes.data(), bytes.size(), path);
}

void resize_region(const RgbImage& src, int x0, int y0, int w, int h, int out_w, int out_h, uint8_t* out) {
  GRAFT_ASSERT(x0 >= 0 && y0 >= 0 && w >= 1 && h >= 1 && x0 + w <= src.width && y0 + h <= src.height,
               "resize region outside the image");
  GRAFT_ASSERT(out_w >= 1 && out_h >= 1, "resize to an empty image");
  const uint8_t* first = src.pixels.data() + (size_t(y0) * size_t(src.width) + size_t(x0)) * 3;
  if (w == out_w && h == out_h) {
    for (int y = 0; y < h; ++y)
      std::memcpy(out + size_t(y) * size_t(out_w) * 3, first + size_t(y) * size_t(src.width) * 3, size_t(w) * 3);
    return;
  }
  if (!stbir_resize_uint8(first, w, h, src.width * 3, out, out_w, out_h, 0, 3))
    fail("resizing a ", w, "x", h, " image to ", out_w, "x", out_h, " failed (out of memory)");
}

RgbImage resize_image(const RgbImage& src, int out_w, int out_h) {
  RgbImage out;
  out.width = out_w;
  out.height = out_h;
  out.pixels.resize(size_t(out_w) * size_t(out_h) * 3);
  resize_region(src, 0, 0, src.width, src.height, out_w, out_h, out.pixels.data());
  return out;
}

bool has_image_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".gif" || ext == ".tga";
}

const char* image_extensions_text() { return "jpg, jpeg, png, bmp, gif, tga"; }

}  // namespace graft
