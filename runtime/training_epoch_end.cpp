// The end of a training epoch: its report and validation, the monitored value and early
// stopping, the epoch's line, metrics record and TensorBoard summaries, the checkpoints (last
// and best); and, at the end of the run, putting back the parameters of the best epoch.
#include <algorithm>
#include <iomanip>
#include <optional>
#include <ostream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "runtime/training_run.h"

namespace graft {

namespace {

// Higher is better for accuracies, lower for losses.
bool monitor_higher_is_better(const std::string& m) { return m.find("accuracy") != std::string::npos; }

double monitored(const std::string& m, const EpochReport& r) {
  if (m == "loss") return r.train.loss();
  if (m == "accuracy") return r.train.accuracy();
  if (m == "val_loss") return r.validation->loss();
  return r.validation->accuracy();
}

}  // namespace

bool TrainingRun::end_epoch(int epoch) {
  EpochReport r;
  r.epoch = epoch;
  r.train = dp_ ? dp_->sum(ex_.read_metrics()) : ex_.read_metrics();
  r.cache_seconds = std::exchange(cache_seconds_, 0.0);
  r.seconds = seconds_since(epoch_start_) + r.cache_seconds;
  r.images_per_second = r.train.count / std::max(r.seconds, 1e-9);
  r.lr = lr_;
  r.skipped_examples = source_->skipped();
  // TensorBoard's confusion matrix and misclassified images come from the same pass; when
  // it reads the feature cache's features, the images are read again up to the last one.
  std::optional<ValidationExamples> examples;
  if (val_source_ && board())
    examples.emplace(data_.num_classes(), validation_->sample_shape(), /*keep_inputs=*/!val_cache_);
  if (val_source_)
    r.validation = evaluate(model_, *val_source_, plan_.batch, o_.loss, o_.reference_kernels,
                            val_cache_ ? plan_.cache.cut : -1, examples ? &*examples : nullptr);
  if (split_validation_) r.validation = dp_->sum(*r.validation);
  if (examples && val_cache_) examples->read_inputs(*validation_, plan_.batch);
  at_.epochs_done = epoch;
  at_.batches_in_epoch = 0;
  at_.position_in_epoch = 0;
  at_.partial = {};

  const bool improved = update_best(r);
  if (writes()) {
    print_line(r, improved);
    write_metrics(r);
    board_epoch(r, examples ? &*examples : nullptr);
  }
  if (improved && o_.restore_best) {
    const float* host = model_.host_params();
    best_params_.assign(host, host + model_.total_param_count());
  }
  if (improved && !o_.save_best_path.empty()) save(o_.save_best_path, epoch);
  if (!o_.save_path.empty()) save(o_.save_path, epoch);
  reports_.push_back(r);
  if (o_.patience > 0 && at_.bad_epochs >= o_.patience) {
    log_ << "early stopping: " << plan_.monitor << " has not improved for " << o_.patience << " epochs" << std::endl;
    return true;
  }
  return false;
}

// Whether the monitored value improved on the best so far; counts the epochs since it did.
bool TrainingRun::update_best(const EpochReport& r) {
  const double value = monitored(plan_.monitor, r);
  const bool improved =
      !at_.best || (monitor_higher_is_better(plan_.monitor) ? value > *at_.best : value < *at_.best);
  if (improved) {
    at_.best = value;
    at_.bad_epochs = 0;
  } else {
    ++at_.bad_epochs;
  }
  return improved;
}

void TrainingRun::print_line(const EpochReport& r, bool improved) {
  log_ << "epoch " << std::setw(3) << r.epoch << "/" << o_.epochs << std::fixed << std::setprecision(4) << "  loss "
       << r.train.loss() << "  acc " << std::setprecision(2) << 100.0 * r.train.accuracy() << "%";
  if (r.validation)
    log_ << std::setprecision(4) << "  val_loss " << r.validation->loss() << "  val_acc " << std::setprecision(2)
         << 100.0 * r.validation->accuracy() << "%";
  const char* rate = data_.sample_shape().rank() == 2 ? " seq/s  " : " img/s  ";
  log_ << std::setprecision(0) << "  " << r.images_per_second << rate << std::setprecision(1)
       << seconds_since(run_start_) << "s";
  if (r.skipped_examples) log_ << "  (" << r.skipped_examples << " bad images skipped)";
  if (improved && (o_.patience > 0 || !o_.save_best_path.empty())) log_ << "  *best " << plan_.monitor;
  log_ << std::defaultfloat << std::endl;
}

void TrainingRun::write_metrics(const EpochReport& r) {
  if (!metrics_file_) return;
  nlohmann::json j{{"epoch", r.epoch},     {"loss", r.train.loss()}, {"accuracy", r.train.accuracy()},
                   {"seconds", r.seconds}, {"images_per_second", r.images_per_second},
                   {"lr", r.lr},           {"step", at_.step},       {"skipped_examples", r.skipped_examples}};
  if (r.cache_seconds > 0) j["cache_seconds"] = r.cache_seconds;
  if (r.validation) {
    j["val_loss"] = r.validation->loss();
    j["val_accuracy"] = r.validation->accuracy();
    j["val_examples"] = static_cast<int64_t>(r.validation->count);
  }
  metrics_file_ << j.dump() << "\n" << std::flush;
}

void TrainingRun::restore_best() {
  if (!o_.restore_best || best_params_.empty()) return;
  std::copy(best_params_.begin(), best_params_.end(), model_.host_params());
  model_.upload_params();
  std::ostringstream best;  // the log's stream keeps the epoch line's fixed precision
  best << *at_.best;
  log_ << "restored the parameters of the best epoch (" << plan_.monitor << " " << best.str() << ")" << std::endl;
}

}  // namespace graft
