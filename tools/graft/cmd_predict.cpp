// graft predict: the top classes of each image, with probabilities.
//   graft predict --checkpoint model.safetensors photo1.jpg photo2.png
// Weights without class names (converted torchvision files) name classes by index, or by
// --classes-file. The model runs through the public API (graft::api::Model, the library's
// forward), --batch images at a time.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "graft/graft.hpp"
#include "runtime/augment.h"
#include "runtime/class_map.h"
#include "runtime/evaluation.h"
#include "runtime/image_decode.h"
#include "tools/graft/checkpoint_config.h"
#include "tools/graft/options.h"

namespace graft::cli {

namespace {
struct PredictOptions {
  ModelOptions model;
  DataOptions data;
  std::string checkpoint;
  std::string classes_file;
  std::vector<std::string> images;
  int top = 5;
  bool json = false;
} opts;

// One image as the model's input: RGB models get the folder pipeline's resize and
// normalization; a one-channel model (fmnist_cnn) gets luminance scaled to [0, 1].
void load_input(const std::string& path, const Shape& sample, const DataOptions& d, float* out) {
  const RgbImage image = decode_image_file(path);
  const int h = int(sample[0]), w = int(sample[1]), c = int(sample[2]);
  if (c == 3) {
    AugmentConfig cfg;
    cfg.normalize = Normalization::preset(d.normalize);
    augment_image(image, cfg, /*augment=*/false, 0, 0, 0, w, h, out);
    return;
  }
  const RgbImage small = resize_image(image, w, h);
  for (int i = 0; i < h * w; ++i) {
    const uint8_t* px = small.pixels.data() + size_t(i) * 3;
    out[i] = (0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2]) / 255.0f;
  }
}
}  // namespace

void register_predict(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("predict", "Classify images with a checkpoint: top classes and probabilities");
  add_model_options(*sub, opts.model);
  add_data_options(*sub, opts.data, /*training=*/false);
  sub->add_option("--checkpoint", opts.checkpoint, "Checkpoint (its class map beside it names the classes)")->required();
  add_classes_file_option(*sub, opts.classes_file);
  sub->add_option("--top", opts.top, "How many classes to show per image")->capture_default_str()->check(at_least_one());
  sub->add_flag("--json", opts.json, "Print JSON");
  sub->add_option("images", opts.images, "Image files")->required();
}

int run_predict(CLI::App& app) {
  const Device device = resolve_device(opts.model);
  const auto file = read_safetensors(opts.checkpoint);
  adopt_checkpoint_config(app, file, opts.model, opts.data);
  const ClassNames named = resolve_class_names(opts.classes_file, opts.checkpoint, file);
  const Shape sample = opts.model.model == "fmnist_cnn" ? Shape{28, 28, 1} : Shape{opts.data.input, opts.data.input, 3};
  api::Model model = api_checkpoint_model(opts.model, sample, file, int(named.names.size()), device);
  const int outputs = model.classes();
  if (!named.names.empty()) check_class_count(named, outputs, opts.checkpoint);
  try {
    model.load(opts.checkpoint, /*strict=*/true);
  } catch (const api::Error& e) {
    fail(e.what());
  }
  const std::vector<std::string> classes = named.names.empty() ? index_class_names(outputs) : named.names;
  if (named.names.empty())  // after the load: the note is for weights that fit
    note_unnamed_classes(opts.checkpoint, "its " + std::to_string(outputs) + " classes are named by index, 'class 0' to 'class " +
                                              std::to_string(outputs - 1) + "'; --classes-file FILE names them");

  api::TrainSettings settings;  // only the batch: how many images one forward takes
  settings.batch = opts.model.batch;
  model.configure(settings);
  const size_t per_image = size_t(sample.numel());
  std::vector<float> images, logits(size_t(opts.model.batch) * size_t(outputs));
  std::vector<std::string> pending;  // the paths whose images are in `images`, in order
  nlohmann::json all = nlohmann::json::array();
  // Classifies the pending images and prints them, in the order given.
  auto flush = [&] {
    if (pending.empty()) return;
    const int64_t n = int64_t(pending.size());
    api::Batch batch{.images = images.data(), .shape = {n, sample[0], sample[1], sample[2]}};
    try {
      model.forward(batch, logits.data());
    } catch (const api::Error& e) {
      fail(e.what());
    }
    const int k = std::min<int>(opts.top, outputs);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits.data() + size_t(i) * size_t(outputs);
      const auto best = top_k(row, outputs, k);
      const auto p = softmax(row, outputs);
      nlohmann::json j{{"image", pending[size_t(i)]}};
      if (!opts.json) std::printf("%s\n", pending[size_t(i)].c_str());
      for (int c : best) {
        j["top"].push_back({{"class", classes[size_t(c)]}, {"index", c}, {"probability", p[size_t(c)]}});
        if (!opts.json) std::printf("  %6.2f%%  %s\n", 100.0 * p[size_t(c)], classes[size_t(c)].c_str());
      }
      all.push_back(j);
    }
    pending.clear();
  };
  int failures = 0;
  for (const auto& path : opts.images) {
    images.resize((pending.size() + 1) * per_image);
    try {
      load_input(path, sample, opts.data, images.data() + pending.size() * per_image);
    } catch (const Error& e) {
      flush();              // the images before it first,
      std::fflush(stdout);  // in a piped log too
      std::fprintf(stderr, "graft: error: %s\n", e.what());
      ++failures;
      continue;
    }
    pending.push_back(path);
    if (int64_t(pending.size()) == opts.model.batch) flush();
  }
  flush();
  if (opts.json) std::cout << all.dump(2) << std::endl;
  if (failures) fail(failures, " of ", opts.images.size(), " images could not be read (see above)");
  return 0;
}

}  // namespace graft::cli
