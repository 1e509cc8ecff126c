// The epochs of a training run, and each epoch's batches, each step (forward, loss, backward, optimizer; gradient
// accumulation), the NaN/Inf checks per step or deferred (--sync-every), the progress bar,
// and saving on an interrupt.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "base/error.h"
#include "runtime/interrupt.h"
#include "runtime/trace.h"
#include "runtime/training_run.h"

namespace graft {

namespace {

void draw_progress(int epoch, int epochs, int64_t done, int64_t total, double elapsed) {
  const int width = 30;
  const int filled = static_cast<int>(width * std::min(done, total) / std::max<int64_t>(total, 1));
  const double eta = done ? elapsed / double(done) * double(std::max<int64_t>(total - done, 0)) : 0.0;
  std::fprintf(stderr, "\repoch %d/%d [%s%s] %lld/%lld  ETA %4.0fs ", epoch, epochs, std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(done), static_cast<long long>(total), eta);
  std::fflush(stderr);
}

}  // namespace

std::vector<EpochReport> TrainingRun::run() {
  board_start();
  for (int epoch = at_.epochs_done + 1; epoch <= o_.epochs; ++epoch) {
    run_epoch(epoch);
    if (end_epoch(epoch)) break;  // early stopping
  }
  restore_best();
  return reports_;
}

void TrainingRun::run_epoch(int epoch) {
  epoch_start_ = TrainClock::now();
  // A resumed epoch's partial sums: rank 0 holds them for every rank (the sums add up).
  ex_.set_metrics(writes() ? at_.partial : Metrics{});
  board_metrics_ = writes() ? at_.partial : Metrics{};
  board_time_ = epoch_start_;
  // Positions in a progress record count the epoch's order; a rank reads its part of it.
  const int64_t skip = dp_ ? dp_->shard().local_position(at_.position_in_epoch, source_->size()) : at_.position_in_epoch;
  source_->start_epoch(o_.seed, epoch, /*shuffle=*/true, o_.augment, skip);
  lr_ = learning_rate_at(plan_.schedule, at_.step);
  pending_ = 0;
  for (;;) {
    const int64_t n = next_batch();
    // With several ranks the epoch ends for all at once: a rank out of rows adds zeros.
    // With --grad-accumulation the ranks sum once per optimizer step (optimizer_step).
    if (dp_ ? !dp_->begin_step(n, o_.grad_accumulation == 1) : n == 0) break;
    const trace::Range step_range("step");  // the micro-batch: forward, loss, backward, optimizer
    if (!step(n, epoch)) continue;          // a skipped non-finite step
    // TensorBoard's step scalars whenever the host reads the device anyway.
    if (pending_ == 0 && (sync_every_ == 1 || at_.batches_in_epoch % sync_every_ == 0)) board_step();
    if (o_.progress)
      draw_progress(epoch, o_.epochs, at_.batches_in_epoch, plan_.batches_per_epoch, seconds_since(epoch_start_));
    if (pending_ == 0 && interrupted()) stop_interrupted(epoch);
  }
  if (pending_ > 0) optimizer_step();  // the epoch's last, partial accumulation
  check_deferred(epoch);
  if (o_.progress) std::fprintf(stderr, "\r%80s\r", "");
}

int64_t TrainingRun::next_batch() {
  const trace::Range range("data wait");
  const int64_t n = plan_.raw ? source_->next_raw_batch(rows_per_step_, ex_.raw_images(), ex_.raw_warps(), ex_.labels())
                              : source_->next_batch(rows_per_step_, ex_.input(), ex_.labels());
  ex_.set_lengths(source_->batch_lengths(), n);  // sequences: the batch's lengths (null for images)
  return n;
}

bool TrainingRun::interrupted() {
  return dp_ ? dp_->comm().any(interrupt_requested(), "the interrupt check") : interrupt_requested();
}

bool TrainingRun::step(int64_t n, int epoch) {
  if (sync_every_ > 1) {  // deferred: the optimizer runs inside forward_backward
    lr_ = learning_rate_at(plan_.schedule, at_.step);
    ex_.forward_backward(n, at_.micro_step, &with_optimizer_);
    ++at_.micro_step;
    ++at_.batches_in_epoch;
    ex_.record_nonfinite(at_.step + 1);
    ++at_.step;
    if (at_.batches_in_epoch % sync_every_ == 0) check_deferred(epoch);
    return true;
  }
  if (n > 0) ex_.forward_backward(n, at_.micro_step, nullptr);
  if (dp_) dp_->finish_step(n);  // the global batch's mean gradient, on every rank
  ++at_.micro_step;
  ++at_.batches_in_epoch;
  if (!step_is_finite(epoch, n)) return false;
  if (o_.grad_accumulation > 1) accumulate_gradients();
  if (++pending_ == o_.grad_accumulation) optimizer_step();
  return true;
}

// Per step (--sync-every 1): the loss and gradients must be finite; false: the step is
// skipped (--skip-nonfinite), else the run stops naming the step.
bool TrainingRun::step_is_finite(int epoch, int64_t n) {
  bool finite = n == 0 || std::isfinite(ex_.last_batch_loss());
  std::string culprit;
  if (!finite && ex_.first_nonfinite_node() >= 0)
    culprit = "; the first layer whose output was not finite is " + model_.nodes()[ex_.first_nonfinite_node()].name;
  if (finite) {
    std::string bad;
    if (!ex_.gradients_finite(&bad)) {
      finite = false;
      culprit = "; the first non-finite gradient is " + bad + "'s";
    }
  }
  // Every rank decides alike (the gradients are the same; the losses are each rank's own).
  if (dp_) finite = !dp_->comm().any(!finite, "the finite check");
  if (finite) return true;
  if (at_.nonfinite_skipped < o_.skip_nonfinite) {
    ++at_.nonfinite_skipped;
    log_ << "skipping step " << at_.step + 1 << ": non-finite loss or gradient" << culprit << " ("
         << at_.nonfinite_skipped << " of " << o_.skip_nonfinite << " allowed)" << std::endl;
    return false;
  }
  stop_nonfinite(epoch, at_.step + 1, at_.batches_in_epoch, std::isnan(ex_.last_batch_loss()), culprit);
}

// Through the backend's ops: the gradients and their sum are host or device memory alike.
void TrainingRun::accumulate_gradients() {
  const int64_t count = ex_.trainable_count();
  if (pending_ == 0)
    ex_.ops().copy(count, ex_.gradients(), accumulated_.floats());
  else
    ex_.ops().add(count, accumulated_.floats(), ex_.gradients(), accumulated_.floats());
}

void TrainingRun::optimizer_step() {
  if (o_.grad_accumulation > 1) {
    // Every rank has the same pending_: the ranks' epochs end at the same micro-batch.
    if (dp_) dp_->sum_accumulated(accumulated_.floats(), size_t(ex_.trainable_count()));
    ex_.ops().scale(ex_.trainable_count(), 1.0f / float(pending_), accumulated_.floats());
  }
  lr_ = learning_rate_at(plan_.schedule, at_.step);
  optimizer_.step(segments_, static_cast<float>(lr_));
  ++at_.step;
  pending_ = 0;
}

// --sync-every > 1: the steps since the last look were queued with their step number; the
// first bad one stops the run (its batch: one batch per step, so counted back from now).
void TrainingRun::check_deferred(int epoch) {
  if (sync_every_ == 1) return;
  const int64_t bad = ex_.first_nonfinite_tag();
  if (bad >= 0) stop_nonfinite(epoch, bad, at_.batches_in_epoch - (at_.step - bad), false, "");
}

void TrainingRun::stop_nonfinite(int epoch, int64_t step, int64_t batch_no, bool nan, const std::string& culprit) {
  const bool kept = !o_.save_path.empty() && std::filesystem::exists(o_.save_path);
  fail("the loss or a gradient became ", nan ? "NaN" : "non-finite", " at epoch ", epoch, ", step ", step,
       " (batch ", batch_no, " of ", plan_.batches_per_epoch, ")", culprit, "; stopping. ",
       kept ? "The last good checkpoint, " + o_.save_path + ", is kept as it was."
            : std::string("No checkpoint was written."),
       o_.check_finite ? "" : " --check-finite names the layer where it starts;", " try a lower --lr.");
}

// Between optimizer steps: save where the run stands, then stop with graft::Interrupted.
void TrainingRun::stop_interrupted(int epoch) {
  check_deferred(epoch);  // never save a step that went bad
  if (o_.progress) std::fprintf(stderr, "\n");
  at_.partial = dp_ ? dp_->sum(ex_.read_metrics()) : ex_.read_metrics();
  at_.epochs_done = epoch - 1;
  at_.position_in_epoch =
      dp_ ? dp_->shard().global_position(source_->position(), source_->size()) : source_->position();
  const std::string path = o_.save_path.empty() ? "graft-interrupted.safetensors" : o_.save_path;
  save(path, epoch - 1);
  log_ << "interrupted at epoch " << epoch << ", batch " << at_.batches_in_epoch << " of " << plan_.batches_per_epoch
       << " (step " << at_.step << "); saved " << path << ". Resume with the same command and --resume " << path
       << std::endl;
  throw Interrupted{interrupt_requested()};
}

}  // namespace graft
