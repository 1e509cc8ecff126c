// Shared flags and steps of the graft subcommands.
#include "tools/graft/options.h"

#include <cstdio>

#include "runtime/error.h"

namespace graft::cli {

void add_data_options(CLI::App& app, DataOptions& o) {
  app.add_option("--data", o.data, "Dataset: fashion-mnist (built in)")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "Folder with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--classes", o.classes, "Classes to use, relabelled 0..k-1, e.g. 0-4 or 5,7,9 (default: all)");
  app.add_option("--per-class", o.per_class, "Use K training examples per class, drawn with --seed (default: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "Seed for initialisation, sampling, shuffling and dropout")->capture_default_str();
}

void add_model_options(CLI::App& app, ModelOptions& o) {
  app.add_option("--model", o.model, "Architecture (fmnist_cnn)")->capture_default_str();
  app.add_option("--device", o.device, "auto, cpu or cuda")->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
}

namespace {
void check_data_name(const DataOptions& o) {
  if (o.data != "fashion-mnist")
    fail("--data '", o.data, "' is not supported yet; use --data fashion-mnist (image folders come with the reference recipe)");
}
}  // namespace

int selected_class_count(const DataOptions& o) {
  check_data_name(o);
  return o.classes.empty() ? 10 : static_cast<int>(parse_class_list(o.classes, 10, "--classes").size());
}

Dataset load_data(const DataOptions& o, bool train_split) {
  check_data_name(o);
  Dataset d = load_fashion_mnist(o.data_dir, train_split);
  if (!o.classes.empty()) d = select_classes(d, parse_class_list(o.classes, d.num_classes(), "--classes"));
  if (train_split && o.per_class > 0) d = few_shot(d, o.per_class, o.seed);
  return d;
}

Device resolve_device(const std::string& flag) {
#if defined(GRAFT_HAVE_CUDA)
  const char* why = "the CUDA backend is built but not yet wired into training";
#else
  const char* why = "this graft was built without the CUDA backend (no CUDA toolkit found at build time)";
#endif
  if (flag == "cuda") fail("--device cuda: ", why, "; use --device cpu");
  if (flag == "auto") std::fprintf(stderr, "device: cpu (%s)\n", why);
  return Device::CPU;
}

std::string human_bytes(size_t bytes) {
  char buf[64];
  if (bytes >= (size_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(size_t{1} << 30));
  else if (bytes >= (size_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.2f MiB", double(bytes) / double(size_t{1} << 20));
  else if (bytes >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", double(bytes) / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%zu B", bytes);
  return buf;
}

}  // namespace graft::cli
