// graft bench: the training step of a transfer-learning configuration, timed the way
// bench/pytorch_baseline.py times PyTorch's (the same JSON keys), so bench/compare.sh can
// put the two side by side. Synthetic data stays in the executor's input unless --data.
//   frozen  the reference recipe: the backbone frozen, a grafted head trained
//           (VGG: flatten,dense:1024,relu,dense:N; ResNet: gap,dense:N)
//   full    the same network, everything trainable
//   cached  head-only steps on features of the frozen backbone's output shape (what
//           `graft train --cache-features` runs after its first epoch)
// Steps are timed with the Ops' marks: CUDA events on the device, the host clock on the CPU.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "layers/head.h"
#include "layers/zoo.h"
#include "runtime/backend_registry.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/frozen_prefix.h"
#include "runtime/image_folder.h"
#include "runtime/optimizer.h"
#include "tools/graft/options.h"

namespace graft::cli {

using json = nlohmann::json;

namespace {

struct BenchOptions {
  ModelOptions model;
  int input = 224;
  int classes = 10;
  std::string mode = "frozen";
  int steps = 50;
  int warmup = 10;
  bool json = false;
  bool layers = false;
  std::string data;  // an image folder: real decoding and augmentation in the step
  int workers = -1;
  std::string decoded_cache = "auto";
  std::string frozen_chunk = "auto";
  std::string augment_on = "auto";
  std::string cuda_graphs = "on";
  uint64_t seed = 0;
} opts;

std::string command_line_text = "graft bench";

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

double median(std::vector<double> v) { return percentile(std::move(v), 50); }

// Multiply-accumulates per example of node n: convolutions (weights x output positions)
// and dense layers (weights). The same count as pytorch_baseline.py's hooks.
int64_t node_macs(const Model& m, int n, const std::vector<Shape>& shapes) {
  const Layer& layer = *m.nodes()[size_t(n)].layer;
  const auto specs = layer.param_specs();
  if (specs.empty()) return 0;
  const int64_t weights = specs[0].shape.numel();
  if (layer.kind() == "conv2d") {
    const Shape& out = shapes[size_t(n)];  // [N, H, W, C]
    return weights * out[1] * out[2];
  }
  if (layer.kind() == "dense") return weights;
  return 0;
}

std::string default_head(const std::string& model) {
  return model.rfind("vgg", 0) == 0 ? "flatten,dense:1024,relu,dense:N" : "gap,dense:N";
}

// The backbone alone (no top), for the shape of the features the head reads; built in host
// memory, so it never counts in the device pool.
Shape feature_shape(const BenchOptions& o) {
  HostPool pool;
  ModelSpec s;
  s.architecture = o.model.model;
  s.sample_shape = Shape{o.input, o.input, 3};
  s.num_classes = o.classes;
  s.width_divisor = o.model.width_divisor;
  s.include_top = false;
  auto backbone = build_model(s, pool);
  const auto shapes = backbone->infer_shapes(1);
  const Shape& last = shapes.back();
  return Shape(std::vector<int64_t>(last.dims.begin() + 1, last.dims.end()));
}

struct BenchModel {
  std::unique_ptr<Model> model;
  std::vector<bool> frozen;
  int64_t flops_per_image = 0;
  std::string head;
};

BenchModel build(const BenchOptions& o, MemoryPool& pool) {
  BenchModel b;
  b.head = o.model.head.empty() ? default_head(o.model.model) : o.model.head;
  if (o.mode == "cached") {
    // The head alone, on the backbone's feature shape; nothing frozen.
    const Shape features = feature_shape(o);
    b.model = std::make_unique<Model>(o.model.model + "-head", features, pool);
    graft_head(*b.model, parse_head(b.head), o.classes);
    b.model->finalize(o.seed);
    b.frozen.assign(size_t(b.model->num_nodes()), false);
  } else {
    ModelSpec s;
    s.architecture = o.model.model;
    s.sample_shape = Shape{o.input, o.input, 3};
    s.num_classes = o.classes;
    s.seed = o.seed;
    s.width_divisor = o.model.width_divisor;
    s.head = b.head;
    b.model = build_model(s, pool);
    b.frozen.assign(size_t(b.model->num_nodes()), false);
    if (o.mode == "frozen")
      for (int n = 0; n < b.model->num_nodes(); ++n)
        b.frozen[size_t(n)] = b.model->nodes()[size_t(n)].layer->name().rfind("head.", 0) != 0;
  }
  // FLOPs: forward = 2 per MAC; a trained layer costs 3x its forward (pytorch_baseline.py).
  const auto shapes = b.model->infer_shapes(1);
  for (int n = 0; n < b.model->num_nodes(); ++n) {
    const int64_t macs = node_macs(*b.model, n, shapes);
    b.flops_per_image += (b.frozen[size_t(n)] ? 2 : 6) * macs;
  }
  return b;
}

void check_options(const BenchOptions& o) {
  if (o.mode == "cached" && !o.data.empty())
    fail("--mode cached runs on features, not images: drop --data (or use --mode frozen to time the input pipeline)");
}

std::string device_text(Device device) {
  if (device == Device::CPU) return "cpu";
  return require_cuda_backend().summary();
}

}  // namespace

void register_bench(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("bench", "Time training steps of a transfer configuration (images/s, ms/step, memory, TFLOP/s)");
  opts.model.model = "vgg16";
  add_model_options(*sub, opts.model);
  sub->add_option("--input", opts.input, "Square input size in pixels")->capture_default_str()->check(at_least_one());
  sub->add_option("--classes", opts.classes, "Outputs of the head")->capture_default_str()->check(at_least_one());
  sub->add_option("--mode", opts.mode, "frozen (frozen backbone, trained head), full (all trainable), cached (head on cached features)")
      ->capture_default_str()->check(CLI::IsMember({"frozen", "full", "cached"}));
  sub->add_option("--steps", opts.steps, "Timed steps")->capture_default_str()->check(at_least_one());
  sub->add_option("--warmup", opts.warmup, "Untimed steps first")->capture_default_str()->check(zero_or_more());
  sub->add_option("--data", opts.data, "An image folder: decode (and the step) inside the timing, to see whether input or compute limits");
  sub->add_option("--workers", opts.workers, "Decode threads with --data (-1: min(4, cores))")->capture_default_str();
  sub->add_option("--decoded-cache", opts.decoded_cache, "With --data: auto, memory, off or a FILE (as graft train)")
      ->capture_default_str();
  sub->add_option("--augment-on", opts.augment_on,
                  "With --data: normalize in the decode threads (cpu) or in the step from uint8 images (device; auto "
                  "on CUDA), as graft train")
      ->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "device"}));
  sub->add_option("--cuda-graphs", opts.cuda_graphs, "CUDA: replay each full step as a captured graph (as graft train)")
      ->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--frozen-chunk", opts.frozen_chunk,
                  "--mode frozen: run the frozen layers N examples at a time: auto, off or N (as graft train)")
      ->capture_default_str();
  sub->add_option("--seed", opts.seed, "Parameters and synthetic data")->capture_default_str();
  sub->add_flag("--layers", opts.layers,
                "Then time every layer's forward and backward (10 more steps); on CUDA both native and library kernels");
  sub->add_flag("--json", opts.json, "Print one JSON object (pytorch_baseline.py's keys) instead of the summary");
}

int run_bench(CLI::App& app) {
  std::ostringstream cmd;
  cmd << "graft bench";
  for (const auto& o : app.get_options())
    if (o->count() > 0 && o->get_name() != "--help") {
      cmd << ' ' << o->get_name();
      if (o->get_expected_max() > 0)  // a flag's "true" is not written
        for (const auto& r : o->results()) cmd << ' ' << r;
    }
  command_line_text = cmd.str();

  const Device device = resolve_device(opts.model);
  check_options(opts);
  const auto pool_owner = make_pool(device);
  MemoryPool& pool = *pool_owner;

  BenchModel b = build(opts, pool);
  Model& model = *b.model;
  ExecutorOptions eo;
  eo.batch = opts.model.batch;
  eo.frozen = b.frozen;
  eo.seed = opts.seed;
  eo.optimizer_state_per_param = 2;
  // --data: a real folder, decoded (and normalized, in the workers or in the step) inside
  // the timing.
  std::unique_ptr<ImageFolderSource> folder;
  const bool raw = !opts.data.empty() && (opts.augment_on == "device" || (opts.augment_on == "auto" && device != Device::CPU));
  if (!opts.data.empty()) {
    ImageFolderOptions f;
    f.height = f.width = opts.input;
    f.augment.normalize = Normalization::preset("imagenet");
    f.bad_images = BadImagePolicy::Skip;
    f.threads = opts.workers;
    f.decoded_cache = opts.decoded_cache;
    folder = std::make_unique<ImageFolderSource>(opts.data, f);
    if (!opts.json) std::fprintf(stderr, "decoded-image cache: %s\n", folder->decoded_cache_note().c_str());
    if (folder->num_classes() > opts.classes)
      fail("--data ", opts.data, " has ", folder->num_classes(), " classes; give --classes ", folder->num_classes());
    if (raw) {
      folder->set_raw_batches(true);
      eo.raw_input = folder->raw_normalization();
    }
  }
  const PrefixChunking chunking =
      decide_prefix_chunking(parse_prefix_chunk_mode(opts.frozen_chunk), model, b.frozen, eo.batch);
  eo.chunk_through = chunking.through;
  eo.chunk = chunking.chunk;
  if (!chunking.line.empty() && !opts.json) std::fprintf(stderr, "%s\n", chunking.line.c_str());
  Executor ex(model, eo);
  ex.set_step_graphs(opts.cuda_graphs == "on");
  OptimizerConfig oc;
  oc.kind = "adam";
  oc.lr = 1e-3f;
  Optimizer opt(oc, ex.trainable_count(), pool);

  // Input: synthetic (normal noise, never zeros, like the baseline) or a folder.
  const int64_t batch = opts.model.batch;
  const int64_t sample = model.sample_shape().numel();
  std::vector<float> synthetic;  // the resident batch, kept for --layers' other executors
  std::vector<int32_t> synthetic_labels;
  if (!folder) {
    // One batch, put in the executor's (device) input once, like the baseline's batch that
    // lives on the GPU: no host-to-device copy inside the timed step.
    std::mt19937_64 g(opts.seed + 17);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = 0; i < batch * sample; ++i) ex.input()[i] = normal(g);
    for (int64_t i = 0; i < batch; ++i) ex.labels()[i] = int32_t(g() % uint64_t(opts.classes));
    synthetic.assign(ex.input(), ex.input() + batch * sample);
    synthetic_labels.assign(ex.labels(), ex.labels() + batch);
    ex.upload_input(batch);
    ex.keep_input(true);
  }
  int64_t epoch = 0;
  auto fill_into = [&](Executor& e) -> int64_t {
    if (!folder) return batch;
    auto next = [&] {
      return raw ? folder->next_raw_batch(batch, e.raw_images(), e.raw_warps(), e.labels())
                 : folder->next_batch(batch, e.input(), e.labels());
    };
    int64_t n = next();
    if (n < batch) {  // a new epoch (a partial last batch is dropped: every step is full)
      folder->start_epoch(opts.seed, ++epoch, /*shuffle=*/true, /*augment=*/false);
      n = next();
      if (n < batch) fail("--data ", opts.data, ": fewer readable images than one batch of ", batch);
    }
    return n;
  };
  auto fill = [&](int64_t) { return fill_into(ex); };
  if (folder) folder->start_epoch(opts.seed, epoch, true, false);

  Ops& ops = ex.ops();
  // The whole training step, optimizer included, is what a step graph records (as in train).
  opt.set_scalars_in_memory(true);
  const Executor::StepHooks with_optimizer{[&] { opt.prepare(ex.trainable_segments(), oc.lr); },
                                           [&] { opt.launch(ex.trainable_segments()); }};
  auto step = [&](int64_t i) {
    const int64_t n = fill(i);
    ex.forward_backward(n, i, &with_optimizer);
  };
  for (int i = 0; i < opts.warmup; ++i) step(i);
  ops.synchronize();
  pool.reset_peak();

  // Marks around each step, read after the last: the host queues step i+1 while the device
  // runs step i, as in training and as the PyTorch baseline's CUDA events (waiting for each
  // step would count the host's launch time as the device's).
  std::vector<double> ms, input_ms;
  std::vector<std::pair<int, int>> spans;
  ops.clear_marks();
  for (int i = 0; i < opts.steps; ++i) {
    const int start = ops.mark();
    const auto host_start = std::chrono::steady_clock::now();
    const int64_t n = fill(opts.warmup + i);
    input_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - host_start).count());
    ex.forward_backward(n, opts.warmup + i, &with_optimizer);
    spans.emplace_back(start, ops.mark());
  }
  for (const auto& [start, end] : spans) ms.push_back(ops.elapsed_ms(start, end));
  ops.clear_marks();
  const double final_loss = ex.last_batch_loss();
  int64_t trainable = 0;  // parameters (ex.trainable_count() counts the padded gradient slots)
  for (int n = 0; n < model.num_nodes(); ++n)
    if (!b.frozen[size_t(n)]) trainable += model.node_param_count(n);
  const size_t peak = pool.stats().peak_bytes_in_use;

  // Per-layer times: more steps with the backend's marks around every node, for the run's
  // kernels and, on CUDA, the other implementation on the same batch.
  struct LayerColumn {
    std::string impl;
    std::vector<Executor::LayerTime> times;
  };
  std::vector<LayerColumn> layer_columns;
  if (opts.layers) {
    const int profile_steps = 10;
    auto profile = [&](Executor& e, const std::string& impl) {
      e.reset_layer_times();
      e.set_profiling(true);
      for (int i = 0; i < profile_steps; ++i) {
        const int64_t n = &e == &ex ? fill(opts.warmup + opts.steps + i) : batch;
        e.forward(n, true, i);
        e.backward(n);
        e.ops().clear_marks();
      }
      e.set_profiling(false);
      layer_columns.push_back({impl, e.layer_times()});
    };
    profile(ex, device == Device::CPU ? "cpu" : kernel_choice_name(kernel_settings().kernels));
    // The implementations the run did not use, one at a time (auto: both).
    for (KernelChoice k : {KernelChoice::Native, KernelChoice::Library}) {
      if (device == Device::CPU || k == kernel_settings().kernels) continue;
      ExecutorOptions other = eo;
      other.kernels = k;
      Executor ex2(model, other);
      if (!synthetic.empty()) {
        std::copy(synthetic.begin(), synthetic.end(), ex2.input());
        std::copy(synthetic_labels.begin(), synthetic_labels.end(), ex2.labels());
      } else {
        fill_into(ex2);  // a fresh batch of the folder
      }
      ex2.upload_input(batch);
      ex2.keep_input(true);
      profile(ex2, kernel_choice_name(k));
    }
  }

  std::vector<double> ips;
  for (double m : ms)
    if (m > 0) ips.push_back(double(batch) * 1e3 / m);
  const double images_per_second = ips.empty() ? 0 : median(ips);
  const double tflops = double(b.flops_per_image) * images_per_second / 1e12;

  json j;
  j["tool"] = "graft";
  j["model"] = opts.model.model;
  j["input"] = opts.input;
  j["batch"] = batch;
  j["classes"] = opts.classes;
  j["mode"] = opts.mode;
  j["precision"] = opts.model.precision;
  j["impl"] = device == Device::CPU ? "cpu" : kernel_choice_name(kernel_settings().kernels);
  if (kernel_settings().kernels == KernelChoice::Auto && device != Device::CPU) {
    json chosen = json::object();  // --kernels auto: what each convolution and dense layer runs
    for (int n = 0; n < model.num_nodes(); ++n)
      if (!ex.chosen_kernels()[size_t(n)].empty()) chosen[model.nodes()[size_t(n)].name] = ex.chosen_kernels()[size_t(n)];
    j["chosen_kernels"] = chosen;
  }
  j["head"] = b.head;
  j["width_divisor"] = opts.model.width_divisor;
  j["steps"] = opts.steps;
  j["warmup"] = opts.warmup;
  j["data"] = opts.data.empty() ? "synthetic" : opts.data;
  j["frozen_chunk"] = chunking.chunk;  // examples per chunk of the frozen layers; 0: whole batches
  if (folder) j["decoded_cache"] = folder->decoded_cache_note();
  if (folder) j["augment_on"] = raw ? "device" : "cpu";
  j["images_per_second"] = images_per_second;
  j["ms_per_step"] = {{"p10", percentile(ms, 10)}, {"p50", percentile(ms, 50)}, {"p90", percentile(ms, 90)}};
  j["input_ms_per_step"] = {{"p50", percentile(input_ms, 50)}};
  j["peak_bytes"] = peak;
  j["planned_peak_bytes"] = ex.plan().peak_bytes();
  j["flops_per_image"] = b.flops_per_image;
  j["tflops"] = tflops;
  j["trainable_parameters"] = trainable;
  j["final_loss"] = final_loss;
  j["deterministic"] = kernel_settings().deterministic;
  j["cuda_graph"] = ex.step_graph_captured();
  j["device"] = device_text(device);
  j["command"] = command_line_text;
  if (!layer_columns.empty()) {
    const auto shapes = model.infer_shapes(batch);
    json layers = json::array();
    for (int n = 0; n < model.num_nodes(); ++n) {
      json row;
      row["name"] = model.nodes()[size_t(n)].name;
      row["kind"] = model.nodes()[size_t(n)].layer->kind();
      row["output"] = shapes[size_t(n)].str();
      if (!ex.chosen_kernels()[size_t(n)].empty()) row["chosen"] = ex.chosen_kernels()[size_t(n)];
      for (const auto& col : layer_columns) {
        const auto& t = col.times.size() > size_t(n) ? col.times[size_t(n)] : Executor::LayerTime{};
        row[col.impl] = {{"forward_ms", t.forward_calls ? t.forward_ms / double(t.forward_calls) : 0.0},
                         {"backward_ms", t.backward_calls ? t.backward_ms / double(t.backward_calls) : 0.0}};
      }
      layers.push_back(row);
    }
    j["layers"] = layers;
  }
  if (!std::isfinite(final_loss)) std::fprintf(stderr, "bench: the loss is not finite (%g): not a sane run\n", final_loss);

  if (opts.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s %s, input %d, batch %lld, %s, %s on %s\n", opts.model.model.c_str(), opts.mode.c_str(), opts.input,
              static_cast<long long>(batch), opts.model.precision.c_str(), describe_backend(device).c_str(),
              device_text(device).c_str());
  std::printf("  images/s    %.1f (median of %d steps after %d warm-up)\n", images_per_second, opts.steps, opts.warmup);
  std::printf("  ms/step     p10 %.3f  p50 %.3f  p90 %.3f\n", percentile(ms, 10), percentile(ms, 50), percentile(ms, 90));
  if (folder)
    std::printf("  input       %.3f ms/step (p50) of it waiting for decoded images: %s\n", percentile(input_ms, 50),
                percentile(input_ms, 50) > 0.5 * percentile(ms, 50) ? "input-bound" : "compute-bound");
  std::printf("  memory      peak %s in the pool (planned %s)\n", human_bytes(peak).c_str(),
              human_bytes(ex.plan().peak_bytes()).c_str());
  std::printf("  work        %.2f GFLOP/image, %.3f TFLOP/s achieved\n", double(b.flops_per_image) / 1e9, tflops);
  std::printf("  trainable   %lld parameters; final loss %.4f\n", static_cast<long long>(trainable), final_loss);
  if (!layer_columns.empty()) {
    std::printf("\n%-20s %-10s %-22s", "layer", "kind", "output");
    for (const auto& col : layer_columns) std::printf(" %10s %10s", (col.impl + " fwd").c_str(), (col.impl + " bwd").c_str());
    std::printf("   (ms per step, mean of 10)\n");
    std::vector<double> total(layer_columns.size() * 2, 0.0);
    for (const auto& row : j["layers"]) {
      std::printf("%-20s %-10s %-22s", row["name"].get<std::string>().c_str(), row["kind"].get<std::string>().c_str(),
                  row["output"].get<std::string>().c_str());
      for (size_t c = 0; c < layer_columns.size(); ++c) {
        const double fwd = row[layer_columns[c].impl]["forward_ms"], bwd = row[layer_columns[c].impl]["backward_ms"];
        total[2 * c] += fwd;
        total[2 * c + 1] += bwd;
        std::printf(" %10.3f %10.3f", fwd, bwd);
      }
      std::printf("\n");
    }
    std::printf("%-20s %-10s %-22s", "total", "", "");
    for (double t : total) std::printf(" %10.3f", t);
    std::printf("\n");
  }
  return 0;
}

}  // namespace graft::cli
