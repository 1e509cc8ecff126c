// What graft writes for TensorBoard (--tensorboard DIR): scalars, images (PNG), histograms
// and text, each one Summary.Value in an event file (runtime/event_file.h) that
// TensorBoard's own reader reads. Writing never stops training: after a failed write the
// writer says so once and ignores the rest.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "runtime/event_file.h"
#include "runtime/protobuf.h"

namespace graft {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // height x width x 3, row-major
  RgbImage() = default;
  RgbImage(int w, int h, uint8_t fill = 255) : width(w), height(h), pixels(size_t(w) * size_t(h) * 3, fill) {}
  uint8_t* at(int x, int y) { return pixels.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
};

// PNG bytes of an image (stb_image_write).
std::string encode_png(const RgbImage& image);

class TensorBoard {
 public:
  // Creates `dir` and its parents, and a new event file in it. A folder that cannot be
  // made or written is a graft::Error naming it, meant for before training starts.
  static std::unique_ptr<TensorBoard> open(const std::string& dir, std::ostream& warn);
  // Writes to the file `events_path` itself (tests).
  TensorBoard(const std::string& events_path, std::ostream& warn) : file_(events_path, warn) {}

  void scalar(const std::string& tag, int64_t step, double value);
  // `description` is the image's caption (markdown), shown under it in TensorBoard.
  void image(const std::string& tag, int64_t step, const RgbImage& image, const std::string& description = "");
  // Equal-width buckets over the finite values; `num` counts them all.
  void histogram(const std::string& tag, int64_t step, const float* values, int64_t n, int buckets = 30);
  // Markdown, in TensorBoard's Text tab.
  void text(const std::string& tag, int64_t step, const std::string& markdown);
  void flush() { file_.flush(); }
  bool ok() const { return file_.ok(); }
  const std::string& path() const { return file_.path(); }

 private:
  void value(int64_t step, const ProtoWriter& value);
  tb::EventFile file_;
};

}  // namespace graft
