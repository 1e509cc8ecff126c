// Learning-rate schedules, evaluated per optimizer step on the host and handed to the
// step as a value (never baked into a kernel).
#pragma once
#include <cstdint>
#include <string>

namespace graft {

struct LrScheduleConfig {
  std::string kind = "constant";  // "constant", "step", "cosine"
  float base_lr = 1e-3f;
  int64_t warmup_steps = 0;       // linear warmup from 0 to base_lr (all kinds)
  int64_t step_size = 0;          // "step": multiply by gamma every step_size steps (after warmup)
  float gamma = 0.1f;
  int64_t total_steps = 0;        // "cosine": decay to min_lr at total_steps
  float min_lr = 0.0f;

  void validate() const;  // throws graft::Error naming the bad setting
};

// The learning rate for 0-based optimizer step `step`.
float learning_rate_at(const LrScheduleConfig& c, int64_t step);

}  // namespace graft
