// A training run's progress record as JSON, for checkpoints and --resume.
#include "runtime/training_progress.h"

#include <exception>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace graft {

std::string Progress::to_json() const {
  nlohmann::json j{{"step", step},           {"micro_step", micro_step}, {"epochs_done", epochs_done},
                   {"batches_in_epoch", batches_in_epoch}, {"position_in_epoch", position_in_epoch},
                   {"loss_sum", partial.loss_sum},
                   {"correct", partial.correct}, {"count", partial.count}, {"bad_epochs", bad_epochs},
                   {"nonfinite_skipped", nonfinite_skipped}, {"seed", seed}, {"batch", batch},
                   {"grad_accumulation", grad_accumulation}};
  if (best) j["best"] = *best;
  return j.dump();
}

Progress Progress::from_json(const std::string& text, const std::string& path) {
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

}  // namespace graft
