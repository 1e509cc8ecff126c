#include "runtime/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "base/error.h"

namespace graft {

void LrScheduleConfig::validate() const {
  // Comparisons are written so that NaN fails them.
  if (kind != "constant" && kind != "step" && kind != "cosine")
    fail("unknown learning-rate schedule '", kind, "' (--schedule): expected constant, step or cosine");
  if (!(base_lr > 0.0f) || !std::isfinite(base_lr))
    fail("learning rate (--lr) must be a finite number > 0, got ", base_lr);
  if (warmup_steps < 0) fail("warmup steps (--warmup-steps) must be >= 0, got ", warmup_steps);
  if (kind == "step") {
    if (step_size <= 0)
      fail("the step schedule needs a step size > 0 (--step-size), got ", step_size);
    if (!(gamma > 0.0f) || !std::isfinite(gamma))
      fail("the step schedule's decay factor (--gamma) must be a finite number > 0, got ", gamma);
  }
  if (kind == "cosine") {
    if (total_steps <= warmup_steps)
      fail("the cosine schedule needs more total steps (", total_steps,
           ", from --epochs x steps per epoch) than warmup steps (--warmup-steps ", warmup_steps, ")");
    if (!(min_lr >= 0.0f) || !(min_lr <= base_lr))
      fail("the cosine schedule's minimum learning rate (--min-lr) must be in [0, --lr = ", base_lr,
           "], got ", min_lr);
  }
}

float learning_rate_at(const LrScheduleConfig& c, int64_t step) {
  const double base = c.base_lr;
  if (step < 0) step = 0;
  if (step < c.warmup_steps)
    return static_cast<float>(base * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps));
  const int64_t s = step - c.warmup_steps;
  if (c.kind == "step") {
    if (c.step_size <= 0) return static_cast<float>(base);
    return static_cast<float>(base * std::pow(static_cast<double>(c.gamma), static_cast<double>(s / c.step_size)));
  }
  if (c.kind == "cosine") {
    const int64_t span = c.total_steps - c.warmup_steps;
    const double min_lr = c.min_lr;
    if (span <= 0) return static_cast<float>(min_lr);
    const double frac = std::min(1.0, static_cast<double>(s) / static_cast<double>(span));
    return static_cast<float>(min_lr + (base - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * frac)));
  }
  return static_cast<float>(base);
}

}  // namespace graft
