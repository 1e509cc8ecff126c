// Image decoding with stb_image (JPEG, PNG, BMP, GIF first frame, TGA, PSD, PNM, HDR...) to
// 8-bit RGB, and high-quality resizing with stb_image_resize. Grayscale is replicated to
// RGB, alpha is dropped, 16-bit PNG is reduced to 8 bits. Every failure is a graft::Error
// naming the file and the reason: empty, not an image, truncated, too large.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace graft {

// Largest accepted width or height. Checked from the header before any pixel is decoded,
// so a crafted or broken header cannot make the decoder allocate gigabytes.
inline constexpr int kMaxImageSide = 16384;

// An 8-bit RGB image, rows top to bottom, pixels interleaved: pixels[(y * width + x) * 3 + c].
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;

  uint8_t at(int y, int x, int c) const {
    return pixels[(static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3 +
                  static_cast<size_t>(c)];
  }
};

// Reads and decodes `path`. Errors name the path and say why (missing, empty, not an
// image with stb_image's reason, truncated, dimensions out of range).
RgbImage decode_image_file(const std::string& path);

// Decodes an encoded image held in memory; `origin` names it in errors (a path, "fuzz input").
RgbImage decode_image_memory(const uint8_t* data, size_t size, const std::string& origin);

// The width and height an encoded image's header declares, without decoding it; false when
// the bytes are not an image stb_image can read.
bool declared_image_size(const uint8_t* data, size_t size, int* width, int* height);

// Resizes the (x0, y0, w, h) region of `src` to out_w x out_h with stb_image_resize
// (linear light values, Mitchell filter down, Catmull-Rom up, edges clamped), writing
// out_h * out_w * 3 bytes to `out`. The region must lie inside the image.
void resize_region(const RgbImage& src, int x0, int y0, int w, int h, int out_w, int out_h, uint8_t* out);
RgbImage resize_image(const RgbImage& src, int out_w, int out_h);

// True for the extensions the image folder collects: jpg jpeg png bmp gif tga, any case.
bool has_image_extension(const std::filesystem::path& path);
// "jpg, jpeg, png, bmp, gif, tga", for messages.
const char* image_extensions_text();

}  // namespace graft
