// The training loop.
#include "runtime/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint.h"
#include "runtime/error.h"

namespace graft {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void draw_progress(int epoch, int epochs, int64_t done, int64_t total, double elapsed) {
  const int width = 30;
  const int filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
  const double eta = done ? elapsed / double(done) * double(total - done) : 0.0;
  std::fprintf(stderr, "\repoch %d/%d [%s%s] %lld/%lld  ETA %4.0fs ", epoch, epochs, std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(done), static_cast<long long>(total), eta);
  std::fflush(stderr);
}

int state_per_param(const OptimizerConfig& c) {
  if (c.kind == "sgd") return c.momentum != 0.0f ? 1 : 0;
  return 2;
}

}  // namespace

Metrics evaluate(Model& model, const Dataset& data, int64_t batch, LossKind loss, bool reference_kernels) {
  if (data.size() == 0) fail("nothing to evaluate: ", data.origin, " selects no examples");
  ExecutorOptions eo;
  eo.batch = std::min<int64_t>(batch, data.size());
  eo.training = false;
  eo.loss = loss;
  eo.reference_kernels = reference_kernels;
  Executor ex(model, eo);
  const auto order = epoch_order(data.size(), 0, 0, /*shuffle=*/false);
  for (int64_t begin = 0; begin < data.size(); begin += eo.batch) {
    const int64_t n = std::min(eo.batch, data.size() - begin);
    gather_batch(data, std::span(order).subspan(size_t(begin), size_t(n)), ex.input(), ex.labels());
    ex.forward(n, /*training=*/false, 0);
    ex.accumulate_metrics(n);
  }
  return ex.read_metrics();
}

std::vector<EpochReport> train(Model& model, const Dataset& data, const Dataset* validation,
                               const TrainOptions& o, std::ostream& log) {
  if (data.size() == 0) fail("no training examples in ", data.origin);
  if (o.epochs < 1) fail("--epochs must be at least 1, got ", o.epochs);
  if (data.num_classes() != model.num_outputs())
    fail("model ", model.architecture(), " has ", model.num_outputs(), " outputs but the data has ",
         data.num_classes(), " classes");
  o.optimizer.validate();
  LrScheduleConfig schedule = o.schedule;
  schedule.base_lr = o.optimizer.lr;
  const int64_t batch = std::min<int64_t>(o.batch, data.size());
  const int64_t steps_per_epoch = (data.size() + batch - 1) / batch;
  if (schedule.kind == "cosine" && schedule.total_steps == 0) schedule.total_steps = steps_per_epoch * o.epochs;
  schedule.validate();

  ExecutorOptions eo;
  eo.batch = batch;
  eo.frozen = o.frozen;
  eo.loss = o.loss;
  eo.label_smoothing = o.label_smoothing;
  eo.seed = o.seed;
  eo.reference_kernels = o.reference_kernels;
  eo.optimizer_state_per_param = state_per_param(o.optimizer);
  Executor ex(model, eo);
  Optimizer optimizer(o.optimizer, ex.trainable_count(), model.pool());

  std::ofstream metrics_file;
  if (!o.metrics_path.empty()) {
    metrics_file.open(o.metrics_path, std::ios::trunc);
    if (!metrics_file) fail("--metrics ", o.metrics_path, ": cannot open for writing");
  }

  std::vector<EpochReport> reports;
  int64_t step = 0;
  const auto run_start = Clock::now();
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto start = Clock::now();
    ex.reset_metrics();
    const auto order = epoch_order(data.size(), o.seed, epoch, /*shuffle=*/true);
    double lr = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      const int64_t begin = b * batch, n = std::min(batch, data.size() - begin);
      gather_batch(data, std::span(order).subspan(size_t(begin), size_t(n)), ex.input(), ex.labels());
      ex.forward(n, /*training=*/true, step);
      ex.backward(n);
      if (!std::isfinite(ex.last_batch_loss())) {
        const bool kept = !o.save_path.empty() && std::filesystem::exists(o.save_path);
        fail("the loss became ", std::isnan(ex.last_batch_loss()) ? "NaN" : "infinite", " at epoch ", epoch, ", step ",
             step + 1, " (batch ", b + 1, " of ", steps_per_epoch, "); stopping. ",
             kept ? "The last good checkpoint, " + o.save_path + ", is kept as it was."
                  : std::string("No checkpoint was written."),
             " Try a lower --lr.");
      }
      lr = learning_rate_at(schedule, step);
      optimizer.step(ex.trainable_segments(), static_cast<float>(lr));
      if (o.progress) draw_progress(epoch, o.epochs, b + 1, steps_per_epoch, seconds_since(start));
    }
    if (o.progress) std::fprintf(stderr, "\r%80s\r", "");
    EpochReport r;
    r.epoch = epoch;
    r.train = ex.read_metrics();
    r.seconds = seconds_since(start);
    r.images_per_second = double(data.size()) / std::max(r.seconds, 1e-9);
    r.lr = lr;
    if (validation && validation->size()) r.validation = evaluate(model, *validation, batch, o.loss, o.reference_kernels);
    log << "epoch " << std::setw(3) << epoch << "/" << o.epochs << std::fixed << std::setprecision(4)
        << "  loss " << r.train.loss() << "  acc " << std::setprecision(2) << 100.0 * r.train.accuracy() << "%";
    if (r.validation)
      log << std::setprecision(4) << "  val_loss " << r.validation->loss() << "  val_acc " << std::setprecision(2)
          << 100.0 * r.validation->accuracy() << "%";
    log << std::setprecision(0) << "  " << r.images_per_second << " img/s  " << std::setprecision(1)
        << seconds_since(run_start) << "s" << std::defaultfloat << std::endl;
    if (metrics_file) {
      nlohmann::json j{{"epoch", epoch},         {"loss", r.train.loss()}, {"accuracy", r.train.accuracy()},
                       {"seconds", r.seconds},   {"images_per_second", r.images_per_second},
                       {"lr", r.lr},             {"step", step}};
      if (r.validation) {
        j["val_loss"] = r.validation->loss();
        j["val_accuracy"] = r.validation->accuracy();
      }
      metrics_file << j.dump() << "\n" << std::flush;
    }
    if (!o.save_path.empty()) {
      CheckpointInfo info{step, epoch, data.class_names, o.config_json};
      save_checkpoint(o.save_path, model, &optimizer, ex.trainable_segments(), info);
    }
    reports.push_back(r);
  }
  return reports;
}

}  // namespace graft
