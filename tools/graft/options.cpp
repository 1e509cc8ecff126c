// Shared flags and steps of the graft subcommands.
#include "tools/graft/options.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "layers/batchnorm.h"
#include "layers/zoo.h"
#include "runtime/augment.h"
#include "runtime/backend_registry.h"
#include "base/error.h"
#include "runtime/class_map.h"
#include "runtime/image_folder.h"
#include "runtime/sequence_file.h"

namespace graft::cli {

namespace {

// help_name: what --help shows beside the type (CLI11's own names for these checks).
CLI::Validator whole_number_from(long long least, const char* help_name) {
  return CLI::Validator(
      [least](std::string& value) -> std::string {
        long long v = 0;
        size_t used = 0;
        try {
          v = std::stoll(value, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == value.size() && used > 0 && v >= least) return "";
        return "must be a whole number of at least " + std::to_string(least) + ", got " + value;
      },
      help_name);
}

}  // namespace

const CLI::Validator& at_least_one() {
  static const CLI::Validator v = whole_number_from(1, "POSITIVE");
  return v;
}

const CLI::Validator& zero_or_more() {
  static const CLI::Validator v = whole_number_from(0, "NONNEGATIVE");
  return v;
}

void add_freeze_option(CLI::App& app, std::vector<std::string>& freeze) {
  app.add_option("--freeze", freeze,
                 "Freeze layers (repeatable): a glob on their names ('conv*', 'features.*'), or a range FROM..TO "
                 "in the model's order, ends included, by name or node index, either end optional "
                 "('..features.23': up to it)");
}

void add_data_options(CLI::App& app, DataOptions& o, bool training) {
  app.add_option("--data", o.data,
                 "fashion-mnist (built in), a folder with one subfolder of images per class, or a sequence file "
                 "(FILE.seq or seq:FILE; docs/data.md)")
      ->capture_default_str();
  app.add_option("--max-steps", o.max_steps,
                 "Sequence files: keep the first N steps of longer sequences (reported) and pad every one to N")
      ->check(zero_or_more());
  app.add_option("--data-dir", o.data_dir, "Folder with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--classes", o.classes, "fashion-mnist, sequence files: classes to use, relabelled 0..k-1, e.g. 0-4 or 5,7,9 (default: all)");
  app.add_option("--seed", o.seed, "Seed for initialisation, sampling, shuffling, augmentation and dropout")->capture_default_str();
  app.add_option("--input", o.input, "Image folders: the model's input size in pixels (square)")->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--normalize", o.normalize, "Image folders: unit (x/255), imagenet (mean/std), caffe (BGR, mean), tf, raw")
      ->capture_default_str();
  app.add_option("--bad-images", o.bad_images, "Image folders: skip (report and count) or fail on an unreadable image")
      ->capture_default_str()->check(CLI::IsMember({"skip", "fail"}));
  app.add_option("--workers", o.workers, "Image folders: decode threads (-1: up to 4)")->capture_default_str();
  if (!training) return;
  app.add_option("--classes-file", o.classes_file,
                 "Sequence files: the class names, one per line or a class map JSON (as eval's --classes-file)");
  app.add_option("--per-class", o.per_class, "fashion-mnist, sequence files: K training examples per class, drawn with --seed (default: all)")
      ->check(zero_or_more());
  app.add_option("--decoded-cache", o.decoded_cache,
                 "Image folders: keep each image decoded at the input size after its first read: auto (in memory "
                 "when it fits a quarter of RAM and there is no --random-resized-crop), memory, off, or a FILE "
                 "that later runs reuse")
      ->capture_default_str();
  app.add_option("--val", o.val,
                 "Validate after each epoch on: none, test (fashion-mnist's test split), a folder, or a sequence file")
      ->capture_default_str();
  app.add_option("--val-split", o.val_split, "Image folders, sequence files: hold out this fraction of --data for validation, per class")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--shear", o.shear, "Augmentation: random shear, degrees (Keras shear_range)");
  app.add_option("--zoom", o.zoom, "Augmentation: random zoom in [1-z, 1+z] (Keras zoom_range)");
  app.add_option("--rotation", o.rotation, "Augmentation: random rotation, degrees");
  app.add_option("--shift", o.shift, "Augmentation: random shift, fraction of the size");
  app.add_flag("--hflip", o.hflip, "Augmentation: random horizontal flips");
  app.add_flag("--vflip", o.vflip, "Augmentation: random vertical flips");
  app.add_flag("--random-resized-crop", o.random_resized_crop, "Augmentation: torchvision's RandomResizedCrop");
}

void add_model_options(CLI::App& app, ModelOptions& o) {
  std::string names;
  for (const auto& n : known_architectures()) names += (names.empty() ? "" : ", ") + n;
  app.add_option("--model", o.model, "Architecture: " + names)->capture_default_str();
  app.add_option("--device", o.device, "auto, cpu or cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--kernels", o.kernels,
                 "CUDA kernels: library (cuDNN/cuBLAS), native (hand-written), or auto (per convolution and dense "
                 "layer, whichever ran faster on its shapes when timed at start-up)")
      ->capture_default_str()->check(CLI::IsMember({"native", "library", "auto"}));
  app.add_flag("--deterministic", o.deterministic,
               "CUDA: the same bits on every run (library kernels use deterministic cuDNN/cuBLASLt algorithms only; "
               "native kernels always are; the CPU always is)");
  app.add_option("--precision", o.precision,
                 "fp32 (exact); tf32 (CUDA library kernels on TF32 tensor cores); bf16 (convolutions and dense layers "
                 "multiply bf16 activations and weights, accumulating in fp32, over fp32 master weights, loss and "
                 "optimizer, as autocast: bf16 tensor cores with --kernels library, emulated on the CPU and the "
                 "native kernels)")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  app.add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(at_least_one());
  app.add_option("--head", o.head, "Replace the architecture's top: e.g. 'flatten,dense:1024,relu,dense:N' or 'gap,dense:N'");
  app.add_flag("--no-top", o.no_top, "Keep the backbone only (no classifier)");
  app.add_option("--width-divisor", o.width_divisor, "Divide every width (small test models)")->capture_default_str()
      ->check(at_least_one());
  app.add_option("--bn", o.bn, "BatchNorm policy for some layers: LAYERS=train|frozen-stats|frozen (repeatable; a glob or a range, as --freeze)");
}

bool is_sequence_data(const DataOptions& o) { return is_sequence_file(o.data); }
bool is_image_folder(const DataOptions& o) { return o.data != "fashion-mnist" && !is_sequence_data(o); }

void note_truncation(const SequenceFile& f, const DataOptions& o) {
  const std::string cap = o.max_steps_from_model ? "the model's " + std::to_string(o.max_steps) +
                                                       " steps (its flatten pool reads exactly those; --max-steps overrides)"
                                                 : "";
  if (const auto note = truncation_note(f, o.max_steps, cap); !note.empty()) std::fprintf(stderr, "note: %s\n", note.c_str());
}

namespace {

void check_fashion_mnist_only(const DataOptions& o) {
  if (o.max_steps > 0 && !is_sequence_data(o)) fail("--max-steps applies to sequence files (--data FILE.seq or seq:FILE)");
  if (!o.classes_file.empty() && !is_sequence_data(o))
    fail("--classes-file names a sequence file's classes in training; fashion-mnist and image folders name their own");
  if (is_sequence_data(o)) {
    if (o.val == "test") fail("--val test is fashion-mnist's test split; with a sequence file give --val FILE.seq or --val-split");
    if (o.val != "none" && !is_sequence_file(o.val))
      fail("--val ", o.val, ": with a sequence file as --data, validate on another sequence file (FILE.seq or seq:FILE)");
    if (o.val_split > 0 && o.val != "none") fail("give --val or --val-split, not both");
  } else if (is_image_folder(o)) {
    if (!std::filesystem::is_directory(o.data))
      fail("--data ", o.data, ": no such folder; give fashion-mnist or a folder with one subfolder of images per class");
    if (!o.classes.empty()) fail("--classes selects Fashion-MNIST classes; an image folder's classes are its subfolders");
    if (o.per_class > 0) fail("--per-class applies to Fashion-MNIST; for an image folder, give it fewer images");
  } else if (o.val != "none" && o.val != "test") {
    fail("--val ", o.val, ": with fashion-mnist use --val test (its test split) or none");
  } else if (o.val_split > 0) {
    fail("--val-split holds out part of an image folder; with fashion-mnist use --val test");
  }
}

ImageFolderOptions folder_options(const DataOptions& o) {
  ImageFolderOptions f;
  f.height = f.width = o.input;
  f.augment.normalize = Normalization::preset(o.normalize);
  f.augment.shear_range = o.shear;
  f.augment.zoom_range = o.zoom;
  f.augment.rotation_range = o.rotation;
  f.augment.width_shift_range = f.augment.height_shift_range = o.shift;
  f.augment.horizontal_flip = o.hflip;
  f.augment.vertical_flip = o.vflip;
  f.augment.random_resized_crop.enabled = o.random_resized_crop;
  f.bad_images = o.bad_images == "fail" ? BadImagePolicy::Fail : BadImagePolicy::Skip;
  f.threads = o.workers;
  return f;
}

void report_decoded_cache(const Sources& sources) {
  for (const BatchSource* b : {sources.train.get(), sources.val.get()})
    if (const auto* folder = dynamic_cast<const ImageFolderSource*>(b))
      std::fprintf(stderr, "decoded-image cache (%s): %s\n", folder->origin().c_str(),
                   folder->decoded_cache_note().c_str());
}

Dataset fashion_mnist(const DataOptions& o, bool train_split) {
  Dataset d = load_fashion_mnist(o.data_dir, train_split);
  if (!o.classes.empty()) d = select_classes(d, parse_class_list(o.classes, d.num_classes(), "--classes"));
  if (train_split && o.per_class > 0) d = few_shot(d, o.per_class, o.seed);
  return d;
}

// A sequence file read with `class_names` (empty: its own), its cut reported.
Dataset sequences(const DataOptions& o, const std::string& spec, std::vector<std::string> class_names) {
  SequenceReadOptions r;
  r.max_steps = o.max_steps;
  r.class_names = std::move(class_names);
  SequenceFile f = read_sequence_file(sequence_file_path(spec), r);
  note_truncation(f, o);
  return std::move(f.data);
}

Dataset select(const DataOptions& o, Dataset d) {
  return o.classes.empty() ? d : select_classes(d, parse_class_list(o.classes, d.num_classes(), "--classes"));
}

// Train and validation sequences share one input shape: --max-steps, else the longer's steps.
Sources sequence_sources(const DataOptions& o) {
  Dataset all = sequences(o, o.data, o.classes_file.empty() ? std::vector<std::string>{} : read_class_names_file(o.classes_file));
  Dataset val;
  if (o.val != "none") val = select(o, sequences(o, o.val, all.class_names));  // same labels, same names
  Dataset train = select(o, std::move(all));
  if (o.val_split > 0) {
    HeldOut parts = hold_out(train, o.val_split, o.seed);
    train = std::move(parts.first);
    val = std::move(parts.second);
  }
  if (o.per_class > 0) train = few_shot(train, o.per_class, o.seed);
  const bool has_val = o.val != "none" || o.val_split > 0;
  int64_t steps = o.max_steps > 0 ? o.max_steps : train.images.shape[1];
  if (has_val && o.max_steps == 0) steps = std::max(steps, val.images.shape[1]);
  Sources s;
  s.train = std::make_unique<InMemorySource>(pad_steps(std::move(train), steps));
  if (has_val) s.val = std::make_unique<InMemorySource>(pad_steps(std::move(val), steps));
  return s;
}

}  // namespace

Sources open_training_data(const DataOptions& o) {
  check_fashion_mnist_only(o);
  if (is_sequence_data(o)) return sequence_sources(o);
  Sources s;
  if (!is_image_folder(o)) {
    s.train = std::make_unique<InMemorySource>(fashion_mnist(o, true));
    if (o.val == "test") s.val = std::make_unique<InMemorySource>(fashion_mnist(o, false));
    return s;
  }
  ImageFolderOptions f = folder_options(o);
  f.decoded_cache = o.decoded_cache;
  if (o.val_split > 0) {
    if (o.val != "none") fail("give --val or --val-split, not both");
    auto split = ImageFolderSource::split(o.data, o.val_split, o.seed, f);
    s.train = std::move(split.train);
    s.val = std::move(split.val);
    report_decoded_cache(s);
    return s;
  }
  auto train = std::make_unique<ImageFolderSource>(o.data, f);
  if (o.val != "none") {
    ImageFolderOptions v = validation_options(f);
    v.class_names = train->class_names();
    s.val = std::make_unique<ImageFolderSource>(o.val, v);
  }
  s.train = std::move(train);
  report_decoded_cache(s);
  return s;
}

std::unique_ptr<BatchSource> open_eval_data(const DataOptions& o, const std::vector<std::string>& class_names,
                                            bool train_split) {
  check_fashion_mnist_only(o);
  if (is_sequence_data(o)) {
    // --classes picks from the file's own labels (then compared with the model's classes);
    // without it the model's class list names the file's labels.
    Dataset d = o.classes.empty() ? sequences(o, o.data, class_names) : select(o, sequences(o, o.data, {}));
    if (o.max_steps > 0) d = pad_steps(std::move(d), o.max_steps);
    return std::make_unique<InMemorySource>(std::move(d));
  }
  if (!is_image_folder(o)) return std::make_unique<InMemorySource>(fashion_mnist(o, train_split));
  ImageFolderOptions f = folder_options(o);
  f.class_names = class_names;
  return std::make_unique<ImageFolderSource>(o.data, f);
}

int selected_class_count(const DataOptions& o) {
  if (is_sequence_data(o)) return static_cast<int>(select(o, sequences(o, o.data, {})).class_names.size());
  if (is_image_folder(o)) return static_cast<int>(list_image_folder(o.data).class_names.size());
  return o.classes.empty() ? 10 : static_cast<int>(parse_class_list(o.classes, 10, "--classes").size());
}

Shape input_shape(const DataOptions& o) {
  if (is_sequence_data(o)) {
    const auto& dims = sequences(o, o.data, {}).images.shape.dims;
    return Shape{o.max_steps > 0 ? o.max_steps : dims[1], dims[2]};
  }
  return is_image_folder(o) ? Shape{o.input, o.input, 3} : Shape{28, 28, 1};
}

std::unique_ptr<Model> make_model(const ModelOptions& m, Shape input, int classes, uint64_t seed, MemoryPool& pool) {
  ModelSpec spec;
  spec.architecture = m.model;
  spec.sample_shape = std::move(input);
  spec.num_classes = classes;
  spec.seed = seed;
  spec.head = m.head;
  spec.include_top = !m.no_top;
  spec.width_divisor = m.width_divisor;
  return build_model(spec, pool);
}

std::vector<bool> freeze_and_policy(Model& model, const std::vector<std::string>& freeze, const ModelOptions& m) {
  const auto frozen = resolve_freeze_patterns(model, freeze);
  std::vector<std::pair<std::string, BnPolicy>> overrides;
  for (const auto& spec : m.bn) {
    const auto eq = spec.rfind('=');
    if (eq == std::string::npos || eq == 0) fail("--bn '", spec, "': expected LAYERS=train|frozen-stats|frozen");
    overrides.emplace_back(spec.substr(0, eq), parse_bn_policy(spec.substr(eq + 1)));
  }
  apply_batchnorm_policy(model, frozen, overrides);
  return frozen;
}

Device resolve_device(const std::string& flag) {
  if (flag == "cpu") return Device::CPU;
  std::string why;
  const DeviceBackend* cuda = cuda_backend();
  if (!cuda)
    why = "this graft was built without the CUDA backend (no CUDA toolkit found at build time)";
  else if (!cuda->available(&why))
    why = "no usable CUDA device: " + why;
  if (why.empty()) {
    cuda->check_supported();
    if (flag == "auto") std::fprintf(stderr, "device: cuda (%s)\n", cuda->summary().c_str());
    return Device::CUDA;
  }
  if (flag == "cuda") fail("--device cuda: ", why, "; use --device cpu");
  std::fprintf(stderr, "device: cpu (%s)\n", why.c_str());
  return Device::CPU;
}

Device resolve_device(const ModelOptions& m) {
  KernelSettings s = kernel_settings();
  s.kernels = parse_kernel_choice(m.kernels);
  s.deterministic = m.deterministic;
  s.allow_tf32 = m.precision == "tf32";
  s.bf16 = m.precision == "bf16";
  set_kernel_settings(s);
  const Device device = resolve_device(m.device);
  if (m.precision == "tf32" && device == Device::CPU)
    fail("--precision tf32 is a CUDA tensor-core mode; on the CPU use --precision fp32 or bf16");
  if (m.precision == "tf32" && s.kernels == KernelChoice::Native)
    fail("--precision tf32 needs --kernels library (the hand-written kernels are exact fp32)");
  return device;
}

std::unique_ptr<MemoryPool> make_pool(Device device) {
  if (device == Device::CPU) return std::make_unique<HostPool>();
  return require_cuda_backend().make_pool();
}

std::string describe_backend(Device device) {
  if (device == Device::CPU) return kernel_settings().bf16 ? "cpu, bf16 operands (emulated)" : "cpu";
  return std::string("cuda, ") + kernel_choice_name(default_kernels()) +
         (default_kernels() == KernelChoice::Library
              ? " kernels (cuDNN convolution and pooling, cuBLAS dense; hand-written for the rest)"
              : default_kernels() == KernelChoice::Native
                    ? " kernels (hand-written CUDA)"
                    : " kernels (per convolution and dense layer the faster of native and library)") +
         (kernel_settings().deterministic ? ", deterministic" : "") + (kernel_settings().allow_tf32 ? ", tf32" : "") +
         (kernel_settings().bf16 ? (default_kernels() == KernelChoice::Library ? ", bf16 tensor cores" : ", bf16 operands (emulated)") : "");
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string summarize(const std::vector<std::string>& v, size_t limit) {
  if (v.size() <= limit) return join(v);
  const size_t head = limit / 2, tail = limit - head - 1;
  std::vector<std::string> shown(v.begin(), v.begin() + long(head));
  shown.push_back("...");
  shown.insert(shown.end(), v.end() - long(tail), v.end());
  return join(shown) + " [" + std::to_string(v.size()) + "]";
}

}  // namespace graft::cli
