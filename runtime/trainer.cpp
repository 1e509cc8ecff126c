// The training loop.
#include "runtime/trainer.h"

#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <ostream>

#include <nlohmann/json.hpp>

#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/interrupt.h"
#include "runtime/trace.h"

namespace graft {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void draw_progress(int epoch, int epochs, int64_t done, int64_t total, double elapsed) {
  const int width = 30;
  const int filled = static_cast<int>(width * std::min(done, total) / std::max<int64_t>(total, 1));
  const double eta = done ? elapsed / double(done) * double(std::max<int64_t>(total - done, 0)) : 0.0;
  std::fprintf(stderr, "\repoch %d/%d [%s%s] %lld/%lld  ETA %4.0fs ", epoch, epochs, std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(done), static_cast<long long>(total), eta);
  std::fflush(stderr);
}

int state_per_param(const OptimizerConfig& c) {
  if (c.kind == "sgd") return c.momentum != 0.0f ? 1 : 0;
  return 2;
}

// Where a run stands, saved in a checkpoint's "progress" metadata so --resume continues
// exactly: the same batches, learning rates, dropout masks and optimizer state.
struct Progress {
  int64_t step = 0;            // optimizer steps taken
  int64_t micro_step = 0;      // micro-batches run (dropout's counter)
  int epochs_done = 0;
  int64_t batches_in_epoch = 0;  // micro-batches of the unfinished epoch already run
  int64_t position_in_epoch = 0; // positions of its order consumed (unreadable images included)
  Metrics partial;             // that epoch's sums so far
  std::optional<double> best;  // best monitored value so far
  int bad_epochs = 0;          // epochs since it improved
  int64_t nonfinite_skipped = 0;
  uint64_t seed = 0;
  int64_t batch = 0;
  int grad_accumulation = 1;

  std::string to_json() const {
    nlohmann::json j{{"step", step},           {"micro_step", micro_step}, {"epochs_done", epochs_done},
                     {"batches_in_epoch", batches_in_epoch}, {"position_in_epoch", position_in_epoch},
                     {"loss_sum", partial.loss_sum},
                     {"correct", partial.correct}, {"count", partial.count}, {"bad_epochs", bad_epochs},
                     {"nonfinite_skipped", nonfinite_skipped}, {"seed", seed}, {"batch", batch},
                     {"grad_accumulation", grad_accumulation}};
    if (best) j["best"] = *best;
    return j.dump();
  }
  static Progress from_json(const std::string& text, const std::string& path) {
    Progress p;
    try {
      const auto j = nlohmann::json::parse(text);
      p.step = j.at("step").get<int64_t>();
      p.micro_step = j.at("micro_step").get<int64_t>();
      p.epochs_done = j.at("epochs_done").get<int>();
      p.batches_in_epoch = j.at("batches_in_epoch").get<int64_t>();
      p.position_in_epoch = j.at("position_in_epoch").get<int64_t>();
      p.partial = Metrics{j.at("loss_sum").get<double>(), j.at("correct").get<double>(), j.at("count").get<double>()};
      if (j.contains("best")) p.best = j.at("best").get<double>();
      p.bad_epochs = j.at("bad_epochs").get<int>();
      p.nonfinite_skipped = j.at("nonfinite_skipped").get<int64_t>();
      p.seed = j.at("seed").get<uint64_t>();
      p.batch = j.at("batch").get<int64_t>();
      p.grad_accumulation = j.at("grad_accumulation").get<int>();
    } catch (const std::exception& e) {
      fail("--resume ", path, ": its progress record is unreadable (", e.what(), "); use --init-from to start a new run from its weights");
    }
    return p;
  }
};

// Higher is better for accuracies, lower for losses.
bool monitor_higher_is_better(const std::string& m) { return m.find("accuracy") != std::string::npos; }

double monitored(const std::string& m, const EpochReport& r) {
  if (m == "loss") return r.train.loss();
  if (m == "accuracy") return r.train.accuracy();
  if (m == "val_loss") return r.validation->loss();
  return r.validation->accuracy();
}

}  // namespace

std::vector<float> resolve_class_weights(const std::string& spec, const BatchSource& data) {
  const auto& names = data.class_names();
  std::vector<float> w(names.size(), 0.0f);
  if (spec == "auto") {
    std::vector<int64_t> count(names.size(), 0);
    for (int32_t l : data.labels()) ++count[size_t(l)];
    for (size_t c = 0; c < names.size(); ++c) {
      if (!count[c]) fail("--class-weights auto: class '", names[c], "' has no examples in ", data.origin());
      w[c] = float(double(data.size()) / (double(names.size()) * double(count[c])));
    }
    return w;
  }
  std::ifstream in(spec);
  if (!in) fail("--class-weights ", spec, ": cannot read the file (give auto or a JSON file)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("--class-weights ", spec, ": not valid JSON: ", e.what());
  }
  auto value = [&](const nlohmann::json& v, const std::string& cls) {
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
      fail("--class-weights ", spec, ": the weight of class '", cls, "' must be a non-negative number, got ", v.dump());
    return v.get<float>();
  };
  if (j.is_array()) {
    if (j.size() != names.size())
      fail("--class-weights ", spec, ": ", j.size(), " weights for ", names.size(), " classes");
    for (size_t c = 0; c < names.size(); ++c) w[c] = value(j[c], names[c]);
  } else if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      const auto it = std::find(names.begin(), names.end(), k);
      if (it == names.end()) fail("--class-weights ", spec, ": no class named '", k, "' in ", data.origin());
      w[size_t(it - names.begin())] = value(v, k);
    }
    for (size_t c = 0; c < names.size(); ++c)
      if (!j.contains(names[c])) fail("--class-weights ", spec, ": no weight for class '", names[c], "'");
  } else {
    fail("--class-weights ", spec, ": expected a list of weights or an object {\"class\": weight}");
  }
  return w;
}

void apply_lr_mult(const Model& model, const std::vector<std::pair<std::string, float>>& lr_mult,
                   std::vector<ParamSegment>& segments) {
  for (const auto& [pattern, factor] : lr_mult) {
    const auto selected = select_nodes(model, pattern, "--lr-mult");
    bool used = false;
    for (auto& s : segments) {
      const int node = model.find_node(s.name.substr(0, s.name.rfind('.')));
      if ((node >= 0 && selected[size_t(node)]) || fnmatch(pattern.c_str(), s.name.c_str(), 0) == 0) {
        s.lr_scale = factor;
        used = true;
      }
    }
    if (!used) fail("--lr-mult '", pattern, "=", factor, "' matches no trainable layer");
  }
}

std::pair<std::string, float> parse_lr_mult(const std::string& spec) {
  const auto eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("--lr-mult '", spec, "': expected LAYERS=FACTOR, e.g. 'features.24..features.30=0.1'");
  const std::string factor = spec.substr(eq + 1);
  size_t used = 0;
  float f = 0;
  try {
    f = std::stof(factor, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != factor.size() || !std::isfinite(f) || f < 0)
    fail("--lr-mult '", spec, "': factor '", factor, "' is not a non-negative number");
  return {spec.substr(0, eq), f};
}

Metrics evaluate(Model& model, BatchSource& data, int64_t batch, LossKind loss, bool reference_kernels,
                 int start_after) {
  if (data.size() == 0) fail("nothing to evaluate: ", data.origin(), " has no examples");
  ExecutorOptions eo;
  eo.batch = std::min<int64_t>(batch, data.size());
  eo.training = false;
  eo.loss = loss;
  eo.reference_kernels = reference_kernels;
  eo.start_after = start_after;
  Executor ex(model, eo);
  data.start_epoch(0, 0, /*shuffle=*/false, /*augment=*/false);
  while (const int64_t n = data.next_batch(eo.batch, ex.input(), ex.labels())) {
    ex.forward(n, /*training=*/false, 0);
    ex.accumulate_metrics(n);
  }
  return ex.read_metrics();
}

std::vector<EpochReport> train(Model& model, BatchSource& data, BatchSource* validation, const TrainOptions& o,
                               std::ostream& log) {
  if (data.size() == 0) fail("no training examples in ", data.origin());
  if (o.epochs < 1) fail("--epochs must be at least 1, got ", o.epochs);
  if (o.grad_accumulation < 1) fail("--grad-accumulation must be at least 1, got ", o.grad_accumulation);
  if (o.grad_accumulation > 1 && model.on_device())
    fail("--grad-accumulation is not yet supported with --device cuda; use a smaller --batch or --device cpu");
  if (data.num_classes() != model.num_outputs())
    fail("model ", model.architecture(), " has ", model.num_outputs(), " outputs but ", data.origin(), " has ",
         data.num_classes(), " classes");
  const std::string monitor = !o.monitor.empty() ? o.monitor : validation ? "val_loss" : "loss";
  if (monitor != "loss" && monitor != "accuracy" && monitor != "val_loss" && monitor != "val_accuracy")
    fail("--monitor '", monitor, "' is not one of loss, accuracy, val_loss, val_accuracy");
  if (monitor.rfind("val_", 0) == 0 && !validation)
    fail("--monitor ", monitor, " needs validation data (--val)");
  o.optimizer.validate();
  LrScheduleConfig schedule = o.schedule;
  schedule.base_lr = o.optimizer.lr;
  const int64_t batch = std::min<int64_t>(o.batch, data.size());
  const int64_t batches_per_epoch = (data.size() + batch - 1) / batch;
  const int64_t steps_per_epoch = (batches_per_epoch + o.grad_accumulation - 1) / o.grad_accumulation;
  if (schedule.kind == "cosine" && schedule.total_steps == 0) schedule.total_steps = steps_per_epoch * o.epochs;
  schedule.validate();

  const FeatureCacheDecision cache =
      decide_feature_cache(o.cache_features, model, o.frozen, o.augment, data, validation,
                           o.cache_budget_bytes ? o.cache_budget_bytes : default_feature_cache_budget());
  if (!cache.line.empty()) std::cerr << cache.line << std::endl;
  const PrefixChunking chunking = cache.on ? PrefixChunking{} : decide_prefix_chunking(o.frozen_chunk, model, o.frozen, batch);
  if (!chunking.line.empty()) std::cerr << chunking.line << std::endl;

  ExecutorOptions eo;
  eo.batch = batch;
  eo.frozen = o.frozen;
  eo.start_after = cache.cut;  // with the cache: the layers after the cut only
  eo.chunk_through = chunking.through;
  eo.chunk = chunking.chunk;
  // With the feature cache the steps read cached features, nothing to augment.
  const bool raw = !cache.on && (o.augment_on == TrainOptions::AugmentOn::Device ||
                                 (o.augment_on == TrainOptions::AugmentOn::Auto && model.on_device() &&
                                  data.has_raw_batches()));
  if (raw) {
    data.set_raw_batches(true);
    eo.raw_input = data.raw_normalization();
  }
  eo.loss = o.loss;
  eo.label_smoothing = o.label_smoothing;
  eo.seed = o.seed;
  eo.reference_kernels = o.reference_kernels;
  eo.optimizer_state_per_param = state_per_param(o.optimizer);
  eo.check_finite = o.check_finite;
  eo.class_weights = o.class_weights;
  Executor ex(model, eo);
  ex.set_step_graphs(o.step_graphs);
  Optimizer optimizer(o.optimizer, ex.trainable_count(), model.pool());

  // Segments the optimizer steps: the executor's, or an accumulation buffer's.
  std::vector<ParamSegment> segments = ex.trainable_segments();
  PoolBuffer accumulated;
  if (o.grad_accumulation > 1) {
    accumulated = PoolBuffer(model.pool(), size_t(ex.trainable_count()) * sizeof(float), "gradients");
    for (auto& s : segments) s.grad = accumulated.floats() + (s.grad - ex.gradients());
  }
  apply_lr_mult(model, o.lr_mult, segments);

  Progress at;
  at.seed = o.seed;
  at.batch = batch;
  at.grad_accumulation = o.grad_accumulation;
  if (!o.resume_path.empty()) {
    const auto file = read_safetensors(o.resume_path);
    const CheckpointInfo info = read_checkpoint_info(file);
    if (info.progress_json.empty())
      fail("--resume ", o.resume_path, " has no progress record (it was not written by graft train); use --init-from");
    const Progress saved = Progress::from_json(info.progress_json, o.resume_path);
    if (saved.seed != o.seed || saved.batch != batch || saved.grad_accumulation != o.grad_accumulation)
      fail("--resume ", o.resume_path, " was written with --seed ", saved.seed, " --batch ", saved.batch,
           " --grad-accumulation ", saved.grad_accumulation, "; resume with the same values to continue exactly");
    load_parameters(model, file, o.resume_path, LoadOptions{/*strict=*/true, {}});
    load_optimizer_state(optimizer, ex.trainable_segments(), model, file, o.resume_path);
    at = saved;
    log << "resuming " << o.resume_path << " after " << at.epochs_done << " epochs and " << at.batches_in_epoch
        << " batches (step " << at.step << ")" << std::endl;
  }

  auto save = [&](const std::string& path, int epoch_for_info) {
    CheckpointInfo info{at.step, epoch_for_info, data.class_names(), o.config_json, at.to_json()};
    save_checkpoint(path, model, &optimizer, ex.trainable_segments(), info);
  };

  std::ofstream metrics_file;
  if (!o.metrics_path.empty()) {
    metrics_file.open(o.metrics_path, at.epochs_done > 0 || at.batches_in_epoch > 0 ? std::ios::app : std::ios::trunc);
    if (!metrics_file) fail("--metrics ", o.metrics_path, ": cannot open for writing");
  }

  std::vector<float> best_params;
  std::vector<EpochReport> reports;
  const auto run_start = Clock::now();

  // Built after --resume loaded the parameters the frozen prefix computes with. The training
  // cache's time counts in this run's first epoch, so that epoch against a cached one is a
  // fair ratio (validation time is never in an epoch's time).
  std::unique_ptr<FeatureCache> train_cache, val_cache;
  double cache_seconds = 0;
  if (cache.on) {
    // The build reads each source once; what a source keeps for later epochs is wasted.
    data.expect_single_pass();
    if (validation) validation->expect_single_pass();
    train_cache = std::make_unique<FeatureCache>(model, cache.cut, data, batch, o.reference_kernels);
    cache_seconds = train_cache->build_seconds();
    std::cerr << "feature cache: built in " << std::fixed << std::setprecision(2) << cache_seconds
              << " s (counted in the time of epoch " << at.epochs_done + 1 << ")";
    if (validation && validation->size() > 0) {
      val_cache = std::make_unique<FeatureCache>(model, cache.cut, *validation, batch, o.reference_kernels);
      std::cerr << ", validation's in " << val_cache->build_seconds() << " s";
    }
    std::cerr << std::defaultfloat << std::endl;
  }
  BatchSource& source = train_cache ? *train_cache : data;
  BatchSource* val_source = val_cache ? val_cache.get() : validation;

  if (o.sync_every < 0) fail("--sync-every must be at least 1 (or 0 for auto), got ", o.sync_every);
  const int sync_every = o.check_finite || o.skip_nonfinite > 0 || o.grad_accumulation > 1 ? 1
                         : o.sync_every > 0                                                 ? o.sync_every
                         : model.on_device()                                                ? 25
                                                                                            : 1;
  auto stop_nonfinite = [&](int epoch, int64_t step, int64_t batch_no, bool nan, const std::string& culprit) {
    const bool kept = !o.save_path.empty() && std::filesystem::exists(o.save_path);
    fail("the loss or a gradient became ", nan ? "NaN" : "non-finite", " at epoch ", epoch, ", step ", step,
         " (batch ", batch_no, " of ", batches_per_epoch, ")", culprit, "; stopping. ",
         kept ? "The last good checkpoint, " + o.save_path + ", is kept as it was."
              : std::string("No checkpoint was written."),
         o.check_finite ? "" : " --check-finite names the layer where it starts;", " try a lower --lr.");
  };
  // --sync-every > 1: the steps since the last look were queued with their step number; the
  // first bad one stops the run (its batch: one batch per step, so counted back from now).
  optimizer.set_scalars_in_memory(sync_every > 1);
  auto check_deferred = [&](int epoch) {
    if (sync_every == 1) return;
    const int64_t bad = ex.first_nonfinite_tag();
    if (bad >= 0) stop_nonfinite(epoch, bad, at.batches_in_epoch - (at.step - bad), false, "");
  };

  for (int epoch = at.epochs_done + 1; epoch <= o.epochs; ++epoch) {
    const auto start = Clock::now();
    ex.set_metrics(at.partial);
    source.start_epoch(o.seed, epoch, /*shuffle=*/true, o.augment, at.position_in_epoch);
    double lr = learning_rate_at(schedule, at.step);
    int pending = 0;  // micro-batches accumulated since the last optimizer step
    auto optimizer_step = [&] {
      if (o.grad_accumulation > 1) {
        const float scale = 1.0f / float(pending);
        for (int64_t i = 0; i < ex.trainable_count(); ++i) accumulated.floats()[i] *= scale;
      }
      lr = learning_rate_at(schedule, at.step);
      optimizer.step(segments, static_cast<float>(lr));
      ++at.step;
      pending = 0;
    };
    auto next = [&] {
      const trace::Range range("data wait");
      return raw ? source.next_raw_batch(batch, ex.raw_images(), ex.raw_warps(), ex.labels())
                 : source.next_batch(batch, ex.input(), ex.labels());
    };
    // Deferred checks: the optimizer's step is part of the step the executor may record as a
    // graph (its scalars go to device memory before each step, its kernels after backward).
    Executor::StepHooks with_optimizer{[&] { optimizer.prepare(segments, static_cast<float>(lr)); },
                                       [&] { optimizer.launch(segments); }};
    // Per step (--sync-every 1): the loss and gradients must be finite; false: the step is
    // skipped (--skip-nonfinite), else the run stops naming the step.
    auto per_step_checks_pass = [&](int epoch_now) {
      bool finite = std::isfinite(ex.last_batch_loss());
      std::string culprit;
      if (!finite && ex.first_nonfinite_node() >= 0)
        culprit = "; the first layer whose output was not finite is " + model.nodes()[ex.first_nonfinite_node()].name;
      if (finite) {
        std::string bad;
        if (!ex.gradients_finite(&bad)) {
          finite = false;
          culprit = "; the first non-finite gradient is " + bad + "'s";
        }
      }
      if (finite) return true;
      if (at.nonfinite_skipped < o.skip_nonfinite) {
        ++at.nonfinite_skipped;
        log << "skipping step " << at.step + 1 << ": non-finite loss or gradient" << culprit << " ("
            << at.nonfinite_skipped << " of " << o.skip_nonfinite << " allowed)" << std::endl;
        return false;
      }
      stop_nonfinite(epoch_now, at.step + 1, at.batches_in_epoch, std::isnan(ex.last_batch_loss()), culprit);
      return false;  // not reached: stop_nonfinite throws
    };
    while (const int64_t n = next()) {
      const trace::Range step_range("step");  // the micro-batch: forward, loss, backward, optimizer
      const bool deferred = sync_every > 1;
      if (deferred) lr = learning_rate_at(schedule, at.step);
      ex.forward_backward(n, at.micro_step, deferred ? &with_optimizer : nullptr);
      ++at.micro_step;
      ++at.batches_in_epoch;
      if (deferred) {  // the optimizer ran inside forward_backward
        ex.record_nonfinite(at.step + 1);
        ++at.step;
        if (at.batches_in_epoch % sync_every == 0) check_deferred(epoch);
      } else {
        if (!per_step_checks_pass(epoch)) continue;  // a skipped non-finite step
        if (o.grad_accumulation > 1) {
          float* acc = accumulated.floats();
          const float* g = ex.gradients();
          if (pending == 0)
            std::memcpy(acc, g, size_t(ex.trainable_count()) * sizeof(float));
          else
            for (int64_t i = 0; i < ex.trainable_count(); ++i) acc[i] += g[i];
        }
        if (++pending == o.grad_accumulation) optimizer_step();
      }
      if (o.progress) draw_progress(epoch, o.epochs, at.batches_in_epoch, batches_per_epoch, seconds_since(start));
      if (pending == 0 && interrupt_requested()) {
        check_deferred(epoch);  // never save a step that went bad
        if (o.progress) std::fprintf(stderr, "\n");
        at.partial = ex.read_metrics();
        at.epochs_done = epoch - 1;
        at.position_in_epoch = source.position();
        const std::string path = o.save_path.empty() ? "graft-interrupted.safetensors" : o.save_path;
        save(path, epoch - 1);
        log << "interrupted at epoch " << epoch << ", batch " << at.batches_in_epoch << " of " << batches_per_epoch
            << " (step " << at.step << "); saved " << path << ". Resume with the same command and --resume " << path
            << std::endl;
        throw Interrupted{interrupt_requested()};
      }
    }
    if (pending > 0) optimizer_step();  // the epoch's last, partial accumulation
    check_deferred(epoch);
    if (o.progress) std::fprintf(stderr, "\r%80s\r", "");

    EpochReport r;
    r.epoch = epoch;
    r.train = ex.read_metrics();
    r.cache_seconds = std::exchange(cache_seconds, 0.0);
    r.seconds = seconds_since(start) + r.cache_seconds;
    r.images_per_second = r.train.count / std::max(r.seconds, 1e-9);
    r.lr = lr;
    r.skipped_examples = source.skipped();
    if (val_source)
      r.validation = evaluate(model, *val_source, batch, o.loss, o.reference_kernels, val_cache ? cache.cut : -1);
    at.epochs_done = epoch;
    at.batches_in_epoch = 0;
    at.position_in_epoch = 0;
    at.partial = {};

    const double value = monitored(monitor, r);
    const bool improved = !at.best || (monitor_higher_is_better(monitor) ? value > *at.best : value < *at.best);
    if (improved) {
      at.best = value;
      at.bad_epochs = 0;
    } else {
      ++at.bad_epochs;
    }

    log << "epoch " << std::setw(3) << epoch << "/" << o.epochs << std::fixed << std::setprecision(4) << "  loss "
        << r.train.loss() << "  acc " << std::setprecision(2) << 100.0 * r.train.accuracy() << "%";
    if (r.validation)
      log << std::setprecision(4) << "  val_loss " << r.validation->loss() << "  val_acc " << std::setprecision(2)
          << 100.0 * r.validation->accuracy() << "%";
    log << std::setprecision(0) << "  " << r.images_per_second << " img/s  " << std::setprecision(1)
        << seconds_since(run_start) << "s";
    if (r.skipped_examples) log << "  (" << r.skipped_examples << " bad images skipped)";
    if (improved && (o.patience > 0 || !o.save_best_path.empty())) log << "  *best " << monitor;
    log << std::defaultfloat << std::endl;
    if (metrics_file) {
      nlohmann::json j{{"epoch", epoch},       {"loss", r.train.loss()}, {"accuracy", r.train.accuracy()},
                       {"seconds", r.seconds}, {"images_per_second", r.images_per_second},
                       {"lr", r.lr},           {"step", at.step},        {"skipped_examples", r.skipped_examples}};
      if (r.cache_seconds > 0) j["cache_seconds"] = r.cache_seconds;
      if (r.validation) {
        j["val_loss"] = r.validation->loss();
        j["val_accuracy"] = r.validation->accuracy();
      }
      metrics_file << j.dump() << "\n" << std::flush;
    }
    if (improved && o.restore_best) {
      const float* host = model.host_params();
      best_params.assign(host, host + model.total_param_count());
    }
    if (improved && !o.save_best_path.empty()) save(o.save_best_path, epoch);
    if (!o.save_path.empty()) save(o.save_path, epoch);
    reports.push_back(r);
    if (o.patience > 0 && at.bad_epochs >= o.patience) {
      log << "early stopping: " << monitor << " has not improved for " << o.patience << " epochs" << std::endl;
      break;
    }
  }
  if (o.restore_best && !best_params.empty()) {
    std::copy(best_params.begin(), best_params.end(), model.host_params());
    model.upload_params();
    log << "restored the parameters of the best epoch (" << monitor << " " << *at.best << ")" << std::endl;
  }
  return reports;
}

}  // namespace graft
