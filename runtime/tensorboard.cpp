// Summary values for TensorBoard (runtime/tensorboard.h). Field numbers are those of
// tensorflow/core/framework/summary.proto, tensor.proto and tensor_shape.proto.
#include "runtime/tensorboard.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "base/error.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#define STBI_WRITE_NO_STDIO  // PNGs go into event records, never to files of their own
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace graft {

namespace {

// Summary.Value fields.
constexpr int kTag = 1, kSimpleValue = 2, kImage = 4, kHisto = 5, kTensor = 8, kMetadata = 9;

void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
}

}  // namespace

std::string encode_png(const RgbImage& image) {
  GRAFT_ASSERT(image.width > 0 && image.height > 0 && image.pixels.size() == size_t(image.width) * size_t(image.height) * 3);
  std::string png;
  if (!stbi_write_png_to_func(append_bytes, &png, image.width, image.height, 3, image.pixels.data(), image.width * 3))
    fail("could not encode a ", image.width, "x", image.height, " PNG");
  return png;
}

std::unique_ptr<TensorBoard> TensorBoard::open(const std::string& dir, std::ostream& warn) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    fail("--tensorboard ", dir, ": cannot create the folder (", ec ? ec.message() : "a file of that name exists",
         "); give a folder you can write to");
  const std::string path = (fs::path(dir) / tb::event_file_name()).string();
  try {
    return std::make_unique<TensorBoard>(path, warn);
  } catch (const Error& e) {
    fail("--tensorboard ", dir, ": the folder is not writable (", e.what(), "); give a folder you can write to");
  }
}

void TensorBoard::value(int64_t step, const ProtoWriter& v) {
  if (!file_.ok()) return;
  file_.write_summary(step, ProtoWriter().message_field(1, v).bytes());  // Summary.value = 1
}

void TensorBoard::scalar(const std::string& tag, int64_t step, double x) {
  value(step, ProtoWriter().bytes_field(kTag, tag).float_field(kSimpleValue, static_cast<float>(x)));
}

void TensorBoard::image(const std::string& tag, int64_t step, const RgbImage& img, const std::string& description) {
  if (!file_.ok()) return;
  // Summary.Image: height = 1, width = 2, colorspace = 3 (3: RGB), encoded_image_string = 4.
  const ProtoWriter im = ProtoWriter()
                             .varint_field(1, uint64_t(img.height))
                             .varint_field(2, uint64_t(img.width))
                             .varint_field(3, 3)
                             .bytes_field(4, encode_png(img));
  ProtoWriter v;
  v.bytes_field(kTag, tag).message_field(kImage, im);
  // SummaryMetadata: plugin_data = 1 (plugin_name "images", as TensorBoard's own migration
  // of an image names it), summary_description = 3.
  if (!description.empty()) {
    const ProtoWriter plugin = ProtoWriter().bytes_field(1, "images");
    v.message_field(kMetadata, ProtoWriter().message_field(1, plugin).bytes_field(3, description));
  }
  value(step, v);
}

void TensorBoard::histogram(const std::string& tag, int64_t step, const float* values, int64_t n, int buckets) {
  if (!file_.ok()) return;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum_sq = 0, finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = values[i];
    if (!std::isfinite(x)) continue;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    sum += x;
    sum_sq += x * x;
    ++finite;
  }
  if (finite == 0) lo = hi = 0;
  const int b = hi > lo ? std::max(buckets, 1) : 1;
  const double width = (hi - lo) / b;
  std::vector<double> limits(static_cast<size_t>(b)), counts(static_cast<size_t>(b), 0.0);
  for (int k = 0; k < b; ++k) limits[size_t(k)] = k + 1 == b ? hi : lo + width * (k + 1);
  for (int64_t i = 0; i < n; ++i) {
    const double x = values[i];
    if (!std::isfinite(x)) continue;
    const int k = width > 0 ? std::min(b - 1, static_cast<int>((x - lo) / width)) : 0;
    counts[size_t(k)] += 1;
  }
  // HistogramProto: min 1, max 2, num 3, sum 4, sum_squares 5, bucket_limit 6, bucket 7.
  const ProtoWriter h = ProtoWriter()
                          .double_field(1, lo)
                          .double_field(2, hi)
                          .double_field(3, double(n))
                          .double_field(4, sum)
                          .double_field(5, sum_sq)
                          .packed_doubles_field(6, limits)
                          .packed_doubles_field(7, counts);
  value(step, ProtoWriter().bytes_field(kTag, tag).message_field(kHisto, h));
}

void TensorBoard::text(const std::string& tag, int64_t step, const std::string& markdown) {
  if (!file_.ok()) return;
  // TensorProto: dtype 1 (DT_STRING = 7), tensor_shape 2 (a scalar: empty), string_val 8.
  const ProtoWriter tensor = ProtoWriter().varint_field(1, 7).bytes_field(2, "").bytes_field(8, markdown);
  // SummaryMetadata.plugin_data (1) = PluginData{plugin_name (1) = "text"}.
  const ProtoWriter metadata = ProtoWriter().message_field(1, ProtoWriter().bytes_field(1, "text"));
  value(step,
        ProtoWriter().bytes_field(kTag, tag).message_field(kMetadata, metadata).message_field(kTensor, tensor));
}

}  // namespace graft
