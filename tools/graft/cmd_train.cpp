// graft train: build or load a model, freeze what is asked, fine-tune, save.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <filesystem>
#include <iostream>


#include "layers/head.h"
#include "layers/zoo.h"
#include "runtime/atomic_file.h"
#include "runtime/checkpoint.h"
#include "runtime/class_map.h"
#include "base/error.h"
#include "runtime/feature_cache.h"
#include "runtime/interrupt.h"
#include "runtime/tensorboard.h"
#include "runtime/trainer.h"
#if defined(GRAFT_HAVE_MPI)
#include "runtime/mpi/mpi_communicator.h"
#endif
#if defined(GRAFT_HAVE_NCCL)
#include "runtime/nccl/nccl_communicator.h"
#endif
#include "tools/graft/config_file.h"
#include "tools/graft/options.h"

namespace graft::cli {

namespace {
struct TrainCliOptions {
  ModelOptions model;
  DataOptions data;
  std::vector<std::string> freeze;
  std::string init_from;
  std::vector<std::string> init_only;
  bool strict = false;
  int epochs = 1;
  OptimizerConfig optimizer;
  std::string schedule = "constant";
  int64_t warmup_steps = 0, step_size = 0;
  float gamma = 0.1f, min_lr = 0.0f;
  std::string loss = "ce";
  float label_smoothing = 0.0f;
  std::string save, metrics, tensorboard;
  std::string progress = "auto";
  std::string resume, save_best, monitor;
  int patience = 0;
  bool restore_best = false;
  int grad_accumulation = 1;
  bool check_finite = false;
  int skip_nonfinite = 0;
  std::vector<std::string> lr_mult;
  std::string config_file;
  std::string class_weights;
  std::string cache_features = "auto";
  std::string frozen_chunk = "auto";
  int sync_every = 0;
  std::string augment_on = "auto";
  std::string cuda_graphs = "on";
  double dist_timeout = 300;
} opts;

void check_writable_target(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::absolute(path).parent_path();
  if (!fs::is_directory(dir)) fail(flag, " ", path, ": the folder ", dir.string(), " does not exist; create it first");
  if (::access(dir.c_str(), W_OK) != 0) fail(flag, " ", path, ": the folder ", dir.string(), " is not writable");
  if (fs::is_directory(path)) fail(flag, " ", path, " is a folder; give a file name such as model.safetensors");
}

// Mistakes that cost nothing to find, found before any data is read (a folder of photos
// can take minutes to scan and decode).
void check_before_reading_data() {
  (void)backbone_patterns(opts.model.model);  // an unknown --model: the error lists the known ones
  if (!opts.model.head.empty()) (void)parse_head(opts.model.head);
  for (const auto& [path, flag] : {std::pair{&opts.init_from, "--init-from"}, std::pair{&opts.resume, "--resume"}})
    if (!path->empty() && !std::filesystem::is_regular_file(*path))
      fail(flag, " ", *path, ": no such file", std::filesystem::is_directory(*path) ? " (it is a folder)" : "");
}

}  // namespace

void register_train(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("train", "Train or fine-tune a model");
  // main() expands --config before parsing (tools/graft/config_file.h); declared here for --help.
  sub->add_option("--config", opts.config_file, "Read flags from a YAML or JSON file; flags on the command line override it");
  add_model_options(*sub, opts.model);
  add_data_options(*sub, opts.data, /*training=*/true);
  add_freeze_option(*sub, opts.freeze);
  sub->add_option("--init-from", opts.init_from, "Start from the parameters of this checkpoint (names and shapes that match)");
  sub->add_option("--init-only", opts.init_only, "With --init-from: load only these layers (repeatable; a glob or a range, as --freeze); the rest start fresh");
  sub->add_flag("--strict", opts.strict, "With --init-from: every tensor must match, else stop");
  sub->add_option("--epochs", opts.epochs, "Epochs")->capture_default_str()->check(at_least_one());
  sub->add_option("--optimizer", opts.optimizer.kind, "sgd, adam or adamw")->capture_default_str()
      ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  sub->add_option("--lr", opts.optimizer.lr, "Learning rate")->capture_default_str();
  sub->add_option("--momentum", opts.optimizer.momentum, "SGD momentum")->capture_default_str();
  sub->add_flag("--nesterov", opts.optimizer.nesterov, "SGD with Nesterov momentum");
  sub->add_option("--weight-decay", opts.optimizer.weight_decay, "L2 for sgd/adam, decoupled for adamw")->capture_default_str();
  sub->add_option("--beta1", opts.optimizer.beta1, "Adam beta1")->capture_default_str();
  sub->add_option("--beta2", opts.optimizer.beta2, "Adam beta2")->capture_default_str();
  sub->add_option("--eps", opts.optimizer.eps, "Adam epsilon")->capture_default_str();
  sub->add_option("--schedule", opts.schedule, "Learning-rate schedule: constant, step or cosine")->capture_default_str()
      ->check(CLI::IsMember({"constant", "step", "cosine"}));
  sub->add_option("--warmup-steps", opts.warmup_steps, "Linear warmup steps")->capture_default_str();
  sub->add_option("--step-size", opts.step_size, "step schedule: steps between decays");
  sub->add_option("--gamma", opts.gamma, "step schedule: decay factor")->capture_default_str();
  sub->add_option("--min-lr", opts.min_lr, "cosine schedule: final learning rate")->capture_default_str();
  sub->add_option("--loss", opts.loss, "ce (softmax cross-entropy) or mse (on one-hot targets)")->capture_default_str()
      ->check(CLI::IsMember({"ce", "mse"}));
  sub->add_option("--label-smoothing", opts.label_smoothing, "Label smoothing for ce")->capture_default_str();
  sub->add_option("--save", opts.save, "Write a checkpoint here after every epoch (atomically)");
  sub->add_option("--metrics", opts.metrics, "Write one JSON line per epoch here");
  sub->add_option("--tensorboard", opts.tensorboard,
                  "Write TensorBoard event files into this folder (made if missing): scalars per step and epoch, "
                  "the validation confusion matrix and misclassified images, weight histograms, the configuration");
  sub->add_option("--progress", opts.progress, "Progress bar: auto (on a terminal), on, off")->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  sub->add_option("--resume", opts.resume, "Continue the run saved in this checkpoint exactly where it stopped (same flags)");
  sub->add_option("--save-best", opts.save_best, "Also write a checkpoint here whenever --monitor improves");
  sub->add_option("--monitor", opts.monitor, "Metric for --save-best and early stopping: val_loss (default with --val), val_accuracy, loss, accuracy");
  sub->add_option("--patience", opts.patience, "Early stopping: stop after this many epochs without improvement (0: off)")
      ->capture_default_str()->check(zero_or_more());
  sub->add_flag("--restore-best", opts.restore_best, "At the end, restore the parameters of the best epoch");
  sub->add_option("--grad-accumulation", opts.grad_accumulation, "Micro-batches per optimizer step")
      ->capture_default_str()->check(at_least_one());
  sub->add_option("--lr-mult", opts.lr_mult, "Learning-rate factor for some layers, LAYERS=FACTOR (repeatable; LAYERS a glob or a range, as --freeze, or a parameter's name)");
  sub->add_option("--class-weights", opts.class_weights, "Cross-entropy class weights: auto (balanced) or a JSON file");
  sub->add_option("--cache-features", opts.cache_features,
                  "Compute the frozen layers' outputs once and train only the layers after them: auto (when "
                  "valid and it fits a quarter of RAM), on, off")
      ->capture_default_str()->check(CLI::IsMember({"auto", "on", "off"}));
  sub->add_option("--frozen-chunk", opts.frozen_chunk,
                  "Run the frozen layers N examples at a time, so their activations take N/batch of the memory: "
                  "auto (chunks of at most 16 when they would take over 256 MiB), off, or N")
      ->capture_default_str();
  sub->add_option("--augment-on", opts.augment_on,
                  "Image folders: warp, flip and normalize the training batches in the decode threads (cpu) or in "
                  "the training step on the model's device from uint8 images (device; the same numbers); auto: "
                  "device when training on a GPU")
      ->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "device"}));
  sub->add_option("--cuda-graphs", opts.cuda_graphs,
                  "CUDA: capture a full training step once as a graph and replay it (with --check-finite, and "
                  "for a partial last batch, steps run one by one)")
      ->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  sub->add_option("--sync-every", opts.sync_every,
                  "Look at the loss and gradients' finiteness every N steps (and at each epoch's end) instead of "
                  "waiting for the GPU after each step; a bad step is still named exactly. 0: auto (1 on the CPU, 25 "
                  "on CUDA; 1 with --check-finite, --skip-nonfinite or --grad-accumulation)")
      ->capture_default_str()->check(zero_or_more());
  sub->add_flag("--check-finite", opts.check_finite, "On a NaN or infinity, name the first layer whose output is not finite");
  sub->add_option("--dist-timeout", opts.dist_timeout,
                  "Under mpirun: seconds a rank waits for the others in one collective before ending every rank "
                  "(a rank that died or hangs); 0 waits forever")
      ->capture_default_str()->check(zero_or_more());
  sub->add_option("--skip-nonfinite", opts.skip_nonfinite, "Skip up to N steps with a non-finite loss or gradient before stopping")
      ->capture_default_str()->check(zero_or_more());
}

namespace {

// The ranks of a data-parallel run (mpirun, srun), or null: this process alone. On GPUs
// (--device cuda, or auto with a GPU) each rank takes the GPU of its local rank, before
// anything touches the device, and the gradients go over NCCL.
std::unique_ptr<Communicator> open_communicator() {
#if defined(GRAFT_HAVE_MPI)
  if (!launched_by_mpi()) return nullptr;
  std::unique_ptr<Communicator> comm = mpi_communicator(opts.dist_timeout);
#if defined(GRAFT_HAVE_NCCL)
  const bool gpus = opts.model.device == "cuda" || (opts.model.device == "auto" && visible_gpus() > 0);
  if (comm->size() > 1 && gpus) {
    try {
      select_device_for_local_rank(local_rank_from_environment(), comm->rank());
    } catch (const std::exception& e) {  // the other ranks would wait for this one's NCCL id
      std::fprintf(stderr, "graft: error: rank %d of %d: %s\n", comm->rank(), comm->size(), e.what());
      comm->end_all(1);
      throw;
    }
    comm = nccl_communicator(std::move(comm), opts.dist_timeout);
  }
#endif
  return comm;
#else
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v))
      fail("graft was started by an MPI launcher but built without MPI; install Debian's libopenmpi-dev "
           "(tools/deps.sh) and rebuild, or run graft train without mpirun");
#endif
  return nullptr;
}

int train_command(CLI::App& app, Communicator* comm);

}  // namespace

// Under mpirun every rank runs this; rank 0 alone prints and writes files. An error on one
// rank ends them all at once (not after --dist-timeout), with the rank named.
int run_train(CLI::App& app) {
  const std::unique_ptr<Communicator> comm = open_communicator();
  if (!comm || comm->size() == 1) return train_command(app, comm.get());
  if (!comm->is_root() && !std::freopen("/dev/null", "w", stdout)) fail("cannot silence rank ", comm->rank());
  try {
    return train_command(app, comm.get());
  } catch (const Interrupted&) {
    throw;  // every rank stopped at the same step; rank 0 saved
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "graft: error: rank %d of %d: %s\n", comm->rank(), comm->size(), e.what());
    comm->end_all(1);
    throw;
  }
}

namespace {

int train_command(CLI::App& app, Communicator* comm) {
  const bool root = !comm || comm->is_root();
  const Device device = resolve_device(opts.model);
  if (opts.label_smoothing < 0.0f || opts.label_smoothing >= 1.0f)
    fail("--label-smoothing must be in [0, 1), got ", opts.label_smoothing);
  if (!opts.init_only.empty() && opts.init_from.empty()) fail("--init-only needs --init-from");
  if (!opts.resume.empty() && !opts.init_from.empty())
    fail("--resume continues a run (weights, optimizer, schedule, data order); --init-from starts a new one from "
         "weights. Give one of them.");
  if (!opts.save_best.empty()) check_writable_target(opts.save_best, "--save-best");
  if (!opts.save.empty()) check_writable_target(opts.save, "--save");
  if (!opts.metrics.empty()) check_writable_target(opts.metrics, "--metrics");
  check_before_reading_data();
  // An unwritable folder stops the run here, before minutes of data loading.
  std::unique_ptr<TensorBoard> board;
  if (!opts.tensorboard.empty() && root) {
    board = TensorBoard::open(opts.tensorboard, std::cerr);
    std::printf("tensorboard: writing %s (view with: tensorboard --logdir %s)\n", board->path().c_str(),
                opts.tensorboard.c_str());
  }

  Sources sources = open_training_data(opts.data);
  BatchSource& data = *sources.train;
  std::printf("data: %lld training %s from %s, %d classes (%s)", static_cast<long long>(data.size()),
              data.example_noun(), data.origin().c_str(), data.num_classes(), summarize(data.class_names(), 12).c_str());
  if (sources.val)
    std::printf("; validating on %lld %s from %s", static_cast<long long>(sources.val->size()), sources.val->example_noun(),
                sources.val->origin().c_str());
  std::printf("\n");

  const auto pool_owner = make_pool(device);
  MemoryPool& pool = *pool_owner;
  auto model = make_model(opts.model, data.sample_shape(), data.num_classes(), opts.data.seed, pool);
  if (!opts.init_from.empty()) {
    const auto file = read_safetensors(opts.init_from);
    const auto report = load_parameters(*model, file, opts.init_from, LoadOptions{opts.strict, opts.init_only});
    std::printf("init: loaded %zu tensors from %s\n", report.loaded.size(), opts.init_from.c_str());
    if (!report.excluded.empty()) std::printf("init: left fresh by --init-only: %s\n", summarize(report.excluded, 8).c_str());
    for (const auto& s : report.shape_mismatch) std::printf("init: skipped (shape differs) %s\n", s.c_str());
    if (!report.not_in_model.empty()) std::printf("init: skipped (not in the model) %s\n", summarize(report.not_in_model, 8).c_str());
    if (!report.not_in_file.empty()) std::printf("init: not in the file, fresh: %s\n", summarize(report.not_in_file, 8).c_str());
  }

  TrainOptions t;
  t.epochs = opts.epochs;
  t.batch = opts.model.batch;
  t.seed = opts.data.seed;
  t.optimizer = opts.optimizer;
  t.schedule.kind = opts.schedule;
  t.schedule.warmup_steps = opts.warmup_steps;
  t.schedule.step_size = opts.step_size;
  t.schedule.gamma = opts.gamma;
  t.schedule.min_lr = opts.min_lr;
  t.loss = opts.loss == "mse" ? LossKind::MSE : LossKind::CrossEntropy;
  t.label_smoothing = opts.label_smoothing;
  t.frozen = freeze_and_policy(*model, opts.freeze, opts.model);
  // Only image folders augment (Fashion-MNIST is in memory and ignores these flags).
  t.augment = is_image_folder(opts.data) &&
              (opts.data.shear > 0 || opts.data.zoom > 0 || opts.data.rotation > 0 || opts.data.shift > 0 ||
               opts.data.hflip || opts.data.vflip || opts.data.random_resized_crop);
  t.cache_features = parse_feature_cache_mode(opts.cache_features);
  t.frozen_chunk = parse_prefix_chunk_mode(opts.frozen_chunk);
  t.sync_every = opts.sync_every;
  t.step_graphs = opts.cuda_graphs == "on";
  t.augment_on = opts.augment_on == "cpu"      ? TrainOptions::AugmentOn::Cpu
                 : opts.augment_on == "device" ? TrainOptions::AugmentOn::Device
                                               : TrainOptions::AugmentOn::Auto;
  t.save_path = opts.save;
  t.metrics_path = opts.metrics;
  t.tensorboard = board.get();
  t.progress = root && (opts.progress == "on" || (opts.progress == "auto" && ::isatty(STDERR_FILENO)));
  t.resume_path = opts.resume;
  t.save_best_path = opts.save_best;
  t.monitor = opts.monitor;
  t.patience = opts.patience;
  t.restore_best = opts.restore_best;
  t.grad_accumulation = opts.grad_accumulation;
  t.check_finite = opts.check_finite;
  t.skip_nonfinite = opts.skip_nonfinite;
  for (const auto& spec : opts.lr_mult) t.lr_mult.push_back(parse_lr_mult(spec));
  if (!opts.class_weights.empty()) {
    t.class_weights = resolve_class_weights(opts.class_weights, data);
    std::string shown;
    for (size_t c = 0; c < t.class_weights.size(); ++c)
      shown += (c ? ", " : "") + data.class_names()[c] + " " + std::to_string(t.class_weights[c]).substr(0, 6);
    std::printf("class weights: %s\n", shown.c_str());
  }

  std::vector<std::string> frozen_names, trainable_names;
  int64_t frozen_count = 0, trainable_count = 0;
  for (int n = 0; n < model->num_nodes(); ++n) {
    if (!model->node_param_count(n)) continue;
    (t.frozen[n] ? frozen_names : trainable_names).push_back(model->nodes()[n].name);
    (t.frozen[n] ? frozen_count : trainable_count) += model->node_param_count(n);
  }
  std::printf("model: %s; frozen: %s (%lld parameters); trainable: %s (%lld parameters)\n", model->architecture().c_str(),
              frozen_names.empty() ? "none" : summarize(frozen_names, 8).c_str(), static_cast<long long>(frozen_count),
              summarize(trainable_names, 8).c_str(), static_cast<long long>(trainable_count));

  // The resolved configuration (file + command line): in the checkpoint, and beside it as a
  // file that --config reads back.
  t.config_json = resolved_config(app);
  t.comm = comm;
  if (comm && comm->size() > 1)
    std::printf("data parallel: %s, a global batch of %lld split over them\n", comm->describe().c_str(),
                static_cast<long long>(std::min<int64_t>(t.batch, data.size())));
  if (!opts.save.empty() && root) write_file_atomic(opts.save + ".config.json", {t.config_json});

  // The class map beside each checkpoint: eval and predict read the class names from it.
  for (const auto* path : {&opts.save, &opts.save_best})
    if (!path->empty() && root) write_class_map(class_map_path(*path), data.class_names());

  install_interrupt_handlers();
  const auto reports = train(*model, data, sources.val.get(), t, std::cout);
  if (!opts.save.empty()) std::printf("saved %s (epoch %d)\n", opts.save.c_str(), reports.back().epoch);
  return 0;
}

}  // namespace

}  // namespace graft::cli
