// graft export: a checkpoint as an ONNX model (opset 17) for inference elsewhere.
//   graft export --onnx model.onnx --checkpoint model.safetensors
// The graph takes NCHW float32 "input" [N, C, H, W], already normalised as the metadata
// says, and gives "logits" [N, K] (no softmax); a sequence model takes "input" [N, steps,
// features] and "lengths" int32 [N] (runtime/onnx/export.h), its shape from the checkpoint's
// input_shape (--steps/--features for a checkpoint without one). BatchNorm is in inference
// form (running statistics), dropout is left out. The model is rebuilt from the checkpoint's recorded
// flags (tools/graft/checkpoint_config.h), as predict and eval do.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "layers/sequence_spec.h"
#include "runtime/augment.h"
#include "runtime/checkpoint.h"
#include "runtime/class_map.h"
#include "runtime/onnx/export.h"
#include "tools/graft/checkpoint_config.h"
#include "tools/graft/options.h"

namespace graft::cli {

namespace {

constexpr const char* kGraftVersion = "0.1";

struct ExportOptions {
  ModelOptions model;
  DataOptions data;
  std::string onnx;
  std::string checkpoint;
  std::string classes_file;
  int64_t steps = 0, features = 0;  // a sequence model's input, when the checkpoint lacks it
} opts;

// A sequence model's example shape: the checkpoint's input_shape, else --steps/--features.
Shape sequence_sample(const SafetensorsFile& file) {
  if (opts.steps > 0 || opts.features > 0) {
    if (opts.steps <= 0 || opts.features <= 0)
      fail("graft export: --steps and --features go together (a sequence model's input [steps, features])");
    return Shape{opts.steps, opts.features};
  }
  std::vector<int64_t> dims = checkpoint_input_shape(file, opts.checkpoint);
  if (dims.empty())
    fail("graft export: ", opts.checkpoint, " does not record its input shape (saved by an older graft); pass the "
         "sequence model's --steps S --features F (token ids: --features 1)");
  return Shape(std::move(dims));
}

// What a user of the ONNX file needs to feed it: layout, channel order and normalisation.
std::vector<std::pair<std::string, std::string>> input_metadata(const Shape& sample, const std::string& normalize) {
  const int64_t h = sample[0], w = sample[1], c = sample[2];
  std::vector<std::pair<std::string, std::string>> m;
  m.emplace_back("graft.input_layout", "NCHW");
  m.emplace_back("graft.input_shape", nlohmann::json{"N", c, h, w}.dump());
  if (c == 1) {
    m.emplace_back("graft.channel_order", "grayscale");
    m.emplace_back("graft.normalization", "unit");
    m.emplace_back("graft.normalization_formula", "input = luminance / 255, luminance 0..255 (0.299 R + 0.587 G + 0.114 B)");
    m.emplace_back("graft.scale", nlohmann::json(1.0 / 255.0).dump());
    m.emplace_back("graft.mean", "[0]");
    m.emplace_back("graft.std", "[1]");
    return m;
  }
  const Normalization n = Normalization::preset(normalize);
  m.emplace_back("graft.channel_order", n.bgr ? "BGR" : "RGB");
  m.emplace_back("graft.normalization", normalize);
  m.emplace_back("graft.normalization_formula",
                 "input[c] = (pixel[c] * scale - mean[c]) / std[c], pixel 0..255 in graft.channel_order, "
                 "images resized to the input size");
  m.emplace_back("graft.scale", nlohmann::json(double(n.scale)).dump());
  m.emplace_back("graft.mean", nlohmann::json(std::vector<double>(n.mean.begin(), n.mean.end())).dump());
  m.emplace_back("graft.std", nlohmann::json(std::vector<double>(n.std.begin(), n.std.end())).dump());
  return m;
}

// What a user of a sequence model's ONNX file feeds it.
std::vector<std::pair<std::string, std::string>> sequence_metadata(const Shape& sample, const std::string& normalize) {
  const int64_t steps = sample[0], features = sample.numel() / steps;
  std::vector<std::pair<std::string, std::string>> m;
  if (sample.rank() == 3) {  // an image read a row per step: its normalisation, then the row layout
    m = input_metadata(sample, normalize);
    m.erase(m.begin(), m.begin() + 2);
    m.emplace_back("graft.input_note", "an image [H, W, C] read a row per step: input [N, H, W*C], channels fastest");
  } else {
    m.emplace_back("graft.normalization", "none: the sequence file's values as they are (token ids as floats)");
  }
  m.emplace(m.begin(), "graft.input_layout", "NTF");
  m.emplace(m.begin() + 1, "graft.input_shape", nlohmann::json{"N", steps, features}.dump());
  m.emplace_back("graft.lengths", "int32 [N]: each example's steps, 1.." + std::to_string(steps) +
                                      "; the steps after it are padding, never read (pass " + std::to_string(steps) +
                                      " for full-length examples)");
  return m;
}

}  // namespace

void register_export(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "export", "Write a checkpoint as an ONNX model (opset 17, NCHW input or a sequence model's [N, steps, features] and "
                "lengths, logits output, metadata with classes and normalization)");
  sub->add_option("--onnx", opts.onnx, "The ONNX file to write (atomically)")->required();
  sub->add_option("--checkpoint", opts.checkpoint, "Checkpoint to export (its class map beside it names the classes)")
      ->required();
  add_classes_file_option(*sub, opts.classes_file);
  sub->add_option("--model", opts.model.model, "Architecture (default: the checkpoint's; fmnist_cnn for weights without graft's configuration)");
  sub->add_option("--head", opts.model.head, "Grafted head spec (default: the checkpoint's)");
  sub->add_flag("--no-top", opts.model.no_top, "The backbone alone (default: the checkpoint's)");
  sub->add_option("--width-divisor", opts.model.width_divisor, "Width divisor (default: the checkpoint's)")
      ->check(at_least_one());
  sub->add_option("--input", opts.data.input, "Input size in pixels, square (default: the checkpoint's, else 224)")
      ->check(at_least_one());
  sub->add_option("--steps", opts.steps, "A sequence model's steps, for a checkpoint that does not record its input shape")
      ->check(at_least_one());
  sub->add_option("--features", opts.features,
                  "A sequence model's features per step (1 for token ids), with --steps")
      ->check(at_least_one());
  sub->add_option("--normalize", opts.data.normalize,
                  "Normalization the model expects, written to the metadata: unit, imagenet, caffe, tf, raw "
                  "(default: the checkpoint's)");
}

int run_export(CLI::App& app) {
  const auto file = read_safetensors(opts.checkpoint);
  adopt_checkpoint_config(app, file, opts.model, opts.data);
  const ClassNames named = resolve_class_names(opts.classes_file, opts.checkpoint, file);
  const bool sequences = is_sequence_spec(opts.model.model);
  if (!sequences && (opts.steps > 0 || opts.features > 0))
    fail("graft export: --steps and --features describe a sequence model's input; ", opts.model.model,
         " takes images (--input sets their size)");
  const Shape sample = sequences                         ? sequence_sample(file)
                       : opts.model.model == "fmnist_cnn" ? Shape{28, 28, 1}
                                                         : Shape{opts.data.input, opts.data.input, 3};
  // An unknown --normalize fails before the work.
  auto metadata = sequences ? sequence_metadata(sample, opts.data.normalize) : input_metadata(sample, opts.data.normalize);
  const auto pool = make_pool(Device::CPU);  // the weights are read on the host
  auto model = make_checkpoint_model(opts.model, sample, file, int(named.names.size()), *pool);
  load_parameters(*model, file, opts.checkpoint, LoadOptions{/*strict=*/true, {}});

  const Shape out = model->infer_shapes(1).back();
  const bool logits = out.rank() == 2 && !opts.model.no_top;  // a sequence backbone ends in [N, F] features
  if (logits) {
    const int outputs = model->num_outputs();
    std::vector<std::string> classes = named.names;
    if (classes.empty()) {
      classes = index_class_names(outputs);
      note_unnamed_classes(opts.checkpoint, "the ONNX metadata names its " + std::to_string(outputs) +
                                                " classes by index; --classes-file FILE names them");
    } else {
      check_class_count(named, outputs, opts.checkpoint);
    }
    metadata.emplace_back("graft.classes", nlohmann::json(classes).dump());
    metadata.emplace_back("graft.output", "logits [N, " + std::to_string(outputs) +
                                              "], one per class in graft.classes order; no softmax (apply one for probabilities)");
  } else if (out.rank() == 2) {
    metadata.emplace_back("graft.output", "features [N, " + std::to_string(out[1]) + "]: the pooled sequence features, no top");
  } else {
    metadata.emplace_back("graft.output", "features [N, C, h, w] (NCHW): the backbone's feature map, no top");
  }
  metadata.emplace_back("graft.version", kGraftVersion);
  metadata.emplace_back("graft.architecture", opts.model.model);
  metadata.emplace_back("graft.head", opts.model.head);
  metadata.emplace_back("graft.checkpoint", std::filesystem::path(opts.checkpoint).filename().string());

  const OnnxGraph graph = model_to_onnx(
      *model, metadata,
      "graft " + opts.model.model + (opts.model.head.empty() ? "" : " with head " + opts.model.head) + " from " +
          opts.checkpoint +
          (sequences ? ": float32 input [N, steps, features] and int32 lengths [N]"
                     : ": NCHW float32 input, normalized as graft.normalization says") +
          "; BatchNorm in inference form, dropout removed",
      logits);
  graph.write(opts.onnx, opts.model.model, kGraftVersion);
  const auto d = [](int64_t v) { return static_cast<long long>(v); };
  if (sequences)
    std::printf("wrote %s: %s, opset %lld, input [N, %lld, %lld] (steps, features) and lengths int32 [N], output %s\n",
                opts.onnx.c_str(), opts.model.model.c_str(), d(OnnxGraph::kOpset), d(sample[0]), d(sample.numel() / sample[0]),
                logits ? "logits" : "features");
  else
    std::printf("wrote %s: %s, opset %lld, input [N, %lld, %lld, %lld] NCHW, output %s\n", opts.onnx.c_str(),
                opts.model.model.c_str(), d(OnnxGraph::kOpset), d(sample[2]), d(sample[0]), d(sample[1]),
                logits ? "logits" : "features");
  return 0;
}

}  // namespace graft::cli
