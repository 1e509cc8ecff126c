// graft predict: the top classes of each image, or of each sequence in sequence files, with
// probabilities.
//   graft predict --checkpoint model.safetensors photo1.jpg photo2.png
//   graft predict --checkpoint lstm.safetensors readings.seq
// Weights without class names (converted torchvision files) name classes by index, or by
// --classes-file. The model runs through the public API (graft::api::Model, the library's
// forward), --batch images at a time.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "graft/graft.hpp"
#include "layers/sequence_spec.h"
#include "runtime/augment.h"
#include "runtime/class_map.h"
#include "runtime/evaluation.h"
#include "runtime/image_decode.h"
#include "runtime/sequence_file.h"
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
// Prints (or collects as JSON) each input's top classes from its logits.
struct Printer {
  const std::vector<std::string>& classes;
  nlohmann::json all = nlohmann::json::array();

  void print(const std::string& name, const char* key, const float* row) {
    const int outputs = int(classes.size());
    const auto best = top_k(row, outputs, std::min<int>(opts.top, outputs));
    const auto p = softmax(row, outputs);
    nlohmann::json j{{key, name}};
    if (!opts.json) std::printf("%s\n", name.c_str());
    for (int c : best) {
      j["top"].push_back({{"class", classes[size_t(c)]}, {"index", c}, {"probability", p[size_t(c)]}});
      if (!opts.json) std::printf("  %6.2f%%  %s\n", 100.0 * p[size_t(c)], classes[size_t(c)].c_str());
    }
    all.push_back(j);
  }
};

// A sequence model's inputs: every sequence of each file (lines "SEQUENCE" or
// "LABEL<TAB>SEQUENCE", the label unread), named FILE:LINE, padded to the longest; with
// max_steps > 0 each cut to its first max_steps (noted).
std::vector<SequenceFile> read_sequence_inputs() {
  std::vector<SequenceFile> files;
  SequenceReadOptions read;
  read.unlabelled = true;
  read.max_steps = opts.data.max_steps;
  for (const auto& spec : opts.images) {
    files.push_back(read_sequence_file(sequence_file_path(spec), read));
    note_truncation(files.back(), opts.data);
    const auto& first = files.front().data.images.shape, &last = files.back().data.images.shape;
    if (last[2] != first[2] || files.back().tokens != files.front().tokens)
      fail(spec, " holds ", files.back().tokens ? "token ids" : std::to_string(last[2]) + "-feature steps", " but ",
           opts.images.front(), " holds ", files.front().tokens ? "token ids" : std::to_string(first[2]) + "-feature steps",
           "; one predict call takes one kind of sequence");
  }
  return files;
}

void predict_sequences(api::Model& model, const std::vector<SequenceFile>& files, Printer& out) {
  const auto& shape = model.input_shape();  // {steps, features}
  const int64_t steps = shape[0], features = shape[1], batch = opts.model.batch;
  std::vector<float> x(size_t(batch * steps * features)), logits(size_t(batch) * out.classes.size());
  std::vector<int32_t> lengths(static_cast<size_t>(batch));
  std::vector<std::string> names;
  auto flush = [&] {
    if (names.empty()) return;
    const int64_t n = int64_t(names.size());
    api::Batch b{.images = x.data(), .shape = {n, steps, features}};
    b.lengths = lengths.data();
    try {
      model.forward(b, logits.data());
    } catch (const api::Error& e) {
      fail(e.what());
    }
    for (int64_t i = 0; i < n; ++i) out.print(names[size_t(i)], "sequence", logits.data() + i * int64_t(out.classes.size()));
    names.clear();
  };
  for (size_t f = 0; f < files.size(); ++f) {
    const Dataset& d = files[f].data;
    const int64_t own_steps = d.images.shape[1];
    for (int64_t e = 0; e < d.size(); ++e) {
      const int64_t slot = int64_t(names.size());
      std::fill_n(x.data() + slot * steps * features, steps * features, 0.0f);
      std::copy_n(d.images.data() + e * own_steps * features, own_steps * features, x.data() + slot * steps * features);
      lengths[size_t(slot)] = d.lengths[size_t(e)];
      names.push_back(sequence_file_path(opts.images[f]) + ":" + std::to_string(files[f].lines[size_t(e)]));
      if (int64_t(names.size()) == batch) flush();
    }
  }
  flush();
}

}  // namespace

void register_predict(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("predict", "Classify images (or, with a sequence model, the sequences of sequence files) with a checkpoint: top classes and probabilities");
  add_model_options(*sub, opts.model);
  add_data_options(*sub, opts.data, /*training=*/false);
  sub->add_option("--checkpoint", opts.checkpoint, "Checkpoint (its class map beside it names the classes)")->required();
  add_classes_file_option(*sub, opts.classes_file);
  sub->add_option("--top", opts.top, "How many classes to show per image")->capture_default_str()->check(at_least_one());
  sub->add_flag("--json", opts.json, "Print JSON");
  sub->add_option("images", opts.images,
                  "Image files; for a sequence model, sequence files (a sequence per line, with or without "
                  "LABEL<TAB> before it; docs/data.md)")
      ->required();
}

int run_predict(CLI::App& app) {
  const Device device = resolve_device(opts.model);
  const auto file = read_safetensors(opts.checkpoint);
  adopt_checkpoint_config(app, file, opts.model, opts.data);
  const ClassNames named = resolve_class_names(opts.classes_file, opts.checkpoint, file);
  const bool sequences = is_sequence_spec(opts.model.model) && is_sequence_file(opts.images.front());
  if (sequences) adopt_model_steps(app, opts.checkpoint, file, opts.model, opts.data);
  const std::vector<SequenceFile> sequence_inputs = sequences ? read_sequence_inputs() : std::vector<SequenceFile>{};
  int64_t longest = opts.data.max_steps;
  for (const auto& f : sequence_inputs) longest = std::max(longest, f.data.images.shape[1]);
  const Shape sample = sequences                          ? Shape{longest, sequence_inputs.front().data.images.shape[2]}
                       : opts.model.model == "fmnist_cnn" ? Shape{28, 28, 1}
                                                          : Shape{opts.data.input, opts.data.input, 3};
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
  Printer out{classes};
  if (sequences) {
    predict_sequences(model, sequence_inputs, out);
    if (opts.json) std::cout << out.all.dump(2) << std::endl;
    return 0;
  }
  const size_t per_image = size_t(sample.numel());
  std::vector<float> images, logits(size_t(opts.model.batch) * size_t(outputs));
  std::vector<std::string> pending;  // the paths whose images are in `images`, in order
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
    for (int64_t i = 0; i < n; ++i) out.print(pending[size_t(i)], "image", logits.data() + size_t(i) * size_t(outputs));
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
  if (opts.json) std::cout << out.all.dump(2) << std::endl;
  if (failures) fail(failures, " of ", opts.images.size(), " images could not be read (see above)");
  return 0;
}

}  // namespace graft::cli
