// Staging a public Batch: everything the caller can get wrong is checked here, by name,
// before the engine sees a byte.
#include "api/batch_input.h"

#include <cstring>
#include <string>
#include <vector>

#include "api/device_memory.h"
#include "base/error.h"
#include "runtime/augment.h"

namespace graft::api_detail {

namespace {

const char* preset_name(api::Normalize n) {
  switch (n) {
    case api::Normalize::Unit: return "unit";
    case api::Normalize::Imagenet: return "imagenet";
    case api::Normalize::Caffe: return "caffe";
    case api::Normalize::Tf: return "tf";
    case api::Normalize::Raw: return "raw";
  }
  fail("unknown Normalize value ", static_cast<int>(n));
}

std::string dims(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// Host copies of what the caller gave in device memory, else its own pointer.
const void* on_host(const void* p, size_t bytes, const api::Batch& b, std::vector<uint8_t>& copy,
                    const std::string& what) {
  if (b.memory == api::Memory::Host) return p;
  copy.resize(bytes);
  device_to_host(copy.data(), p, bytes, b.stream, what);
  return copy.data();
}

}  // namespace

StagedBatch stage_batch(const api::Batch& b, const Model& model, int64_t capacity, float* input,
                        float* device_input, int32_t* labels, bool with_labels, const char* call) {
  const std::string c = call;
  const Shape& sample = model.sample_shape();
  std::vector<int64_t> expected = {0};
  expected.insert(expected.end(), sample.dims.begin(), sample.dims.end());
  if (b.shape.size() != expected.size())
    fail(c, ": Batch::shape must be ", sample.rank() == 2 ? "{n, steps, features}" : "{n, H, W, C} (NHWC)", ", got ",
         dims(b.shape), "; the model takes {n, ", dims(sample.dims).substr(1));
  const int64_t n = b.shape[0];
  expected[0] = n;
  if (b.shape != expected)
    fail(c, ": the batch's shape ", dims(b.shape), " does not match the model's input ", dims(expected),
         " (n examples of ", dims(sample.dims), ")");
  if (n < 1) fail(c, ": the batch holds ", n, " examples; give at least one");
  if (n > capacity)
    fail(c, ": the batch holds ", n, " examples, more than TrainSettings::batch ", capacity,
         "; raise the batch in configure() or split the batch");
  if (!b.images) fail(c, ": Batch::images is null");
  if (with_labels && !b.labels) fail(c, ": Batch::labels is null; ", c, " needs one label per example");

  const int64_t per_example = sample.numel();
  const size_t count = size_t(n * per_example);
  std::vector<uint8_t> image_copy, label_copy, lengths_copy;
  StagedBatch staged{n, false};
  if (!b.uint8 && b.memory == api::Memory::Device && device_input) {
    device_to_device(device_input, b.images, count * sizeof(float), b.stream, c + ": Batch::images");
    staged.images_on_device = true;
  } else if (!b.uint8) {
    const void* src = on_host(b.images, count * sizeof(float), b, image_copy, c + ": Batch::images");
    std::memcpy(input, src, count * sizeof(float));
  } else {
    const auto* px = static_cast<const uint8_t*>(on_host(b.images, count, b, image_copy, c + ": Batch::images"));
    const Normalization norm = Normalization::preset(preset_name(b.normalize));
    const int64_t channels = sample.dims.back();
    if (channels != 3 && b.normalize != api::Normalize::Unit && b.normalize != api::Normalize::Raw)
      fail(c, ": Normalize '", preset_name(b.normalize), "' is for RGB images; the model takes ", channels,
           " channels (use Normalize::Unit or Normalize::Raw)");
    if (channels == 3) {
      for (size_t i = 0; i < count; i += 3) {
        const float rgb[3] = {float(px[i]), float(px[i + 1]), float(px[i + 2])};
        for (int ch = 0; ch < 3; ++ch) input[i + size_t(ch)] = norm.apply(ch, rgb);
      }
    } else {
      for (size_t i = 0; i < count; ++i) input[i] = float(px[i]) * norm.scale;
    }
  }
  if (with_labels) {
    const auto* l = static_cast<const int32_t*>(
        on_host(b.labels, size_t(n) * sizeof(int32_t), b, label_copy, c + ": Batch::labels"));
    const int classes = model.num_outputs();
    for (int64_t i = 0; i < n; ++i)
      if (l[i] < 0 || l[i] >= classes)
        fail(c, ": label ", l[i], " of example ", i, " is outside 0..", classes - 1, " (the model has ", classes,
             " classes)");
    std::memcpy(labels, l, size_t(n) * sizeof(int32_t));
  }
  if (b.lengths) {
    const auto* l = static_cast<const int32_t*>(
        on_host(b.lengths, size_t(n) * sizeof(int32_t), b, lengths_copy, c + ": Batch::lengths"));
    const int64_t steps = sample[0];
    for (int64_t i = 0; i < n; ++i)
      if (l[i] < 1 || l[i] > steps)
        fail(c, ": Batch::lengths[", i, "] is ", l[i], "; a sequence has 1 to ", steps,
             " steps (the model input's first dimension)");
    staged.lengths.assign(l, l + n);
  }
  return staged;
}

}  // namespace graft::api_detail
