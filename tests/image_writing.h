// Images for tests: random pixels and RgbImages, and writing them as PNG, JPEG, BMP or TGA
// files with stb_image_write. The stb functions are static (STB_IMAGE_WRITE_STATIC), so each
// test file that includes this header gets its own private copy: no clash at link time.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/image_decode.h"
#include "tests/testing.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace graft::testing {

// w x h pixels of `comp` channels, each a uniform random byte.
inline std::vector<uint8_t> random_pixels(int w, int h, int comp) {
  std::vector<uint8_t> v(size_t(w) * size_t(h) * size_t(comp));
  for (auto& x : v) x = uint8_t(random_int(0, 255));
  return v;
}

inline RgbImage random_image(int w, int h) {
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels = random_pixels(w, h, 3);
  return img;
}

// Writes `pixels` (comp channels) in the format of p's extension (.png, .bmp, .tga, .jpg or
// .jpeg, any case; JPEG at `jpeg_quality`), creating p's folder; fails the test if it cannot.
inline void write_image(const std::filesystem::path& p, int w, int h, int comp, const std::vector<uint8_t>& pixels,
                        int jpeg_quality = 95) {
  std::filesystem::create_directories(p.parent_path());
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  int ok = 0;
  const std::string s = p.string();
  if (ext == ".png") ok = stbi_write_png(s.c_str(), w, h, comp, pixels.data(), w * comp);
  else if (ext == ".bmp") ok = stbi_write_bmp(s.c_str(), w, h, comp, pixels.data());
  else if (ext == ".tga") ok = stbi_write_tga(s.c_str(), w, h, comp, pixels.data());
  else if (ext == ".jpg" || ext == ".jpeg") ok = stbi_write_jpg(s.c_str(), w, h, comp, pixels.data(), jpeg_quality);
  ASSERT_TRUE(ok) << "writing " << s;
}
inline void write_image(const std::filesystem::path& p, const RgbImage& img, int jpeg_quality = 95) {
  write_image(p, img.width, img.height, 3, img.pixels, jpeg_quality);
}

// An image folder: root/<class>/x<i>.png for each class, per_class random RGB images whose
// sides are uniform in [lo, hi]; with jpeg, every other one is x<i>.jpg instead.
inline void write_image_folder(const std::filesystem::path& root, const std::vector<std::string>& classes,
                               int per_class, int lo, int hi, bool jpeg = false) {
  for (const auto& cls : classes)
    for (int i = 0; i < per_class; ++i)
      write_image(root / cls / ("x" + std::to_string(i) + (jpeg && i % 2 == 0 ? ".jpg" : ".png")),
                  random_image(random_int(lo, hi), random_int(lo, hi)));
}

}  // namespace graft::testing
