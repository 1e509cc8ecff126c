// Feature caching: with a frozen, deterministic prefix and inputs that do not change from
// epoch to epoch (no augmentation), the prefix's output for each example is the same every
// epoch. FeatureCache computes it once, in host memory, and replays epochs of it exactly as
// the underlying source would (order, resume position, labels, unreadable examples), so
// the trainer's later epochs run only the layers after the cut.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/batch_source.h"
#include "runtime/frozen_prefix.h"
#include "runtime/model.h"

namespace graft {

enum class FeatureCacheMode { Auto, On, Off };
// "auto", "on", "off"; an error names --cache-features otherwise.
FeatureCacheMode parse_feature_cache_mode(const std::string& text);

// A quarter of physical memory: the most `auto` lets the caches take.
size_t default_feature_cache_budget();

struct FeatureCacheDecision {
  bool on = false;
  int cut = -1;
  size_t bytes = 0;  // host memory of the caches (training and validation)
  std::string line;  // what to tell the user, one line (empty for off)
};
// Whether a run caches features. Off: never. Auto: when the cut exists, the training data
// is not augmented and the caches fit `budget_bytes`; otherwise off, saying why. On: the
// same conditions, a graft::Error naming the reason otherwise.
FeatureCacheDecision decide_feature_cache(FeatureCacheMode mode, const Model& model, const std::vector<bool>& frozen,
                                          bool augment, const BatchSource& train, const BatchSource* validation,
                                          size_t budget_bytes);

class FeatureCache final : public BatchSource {
 public:
  // Reads one epoch of `source` in dataset order (unshuffled, not augmented) and runs it
  // through the model's nodes up to `cut` (inference, batches of `batch`, on the model's
  // device), keeping each example's output in host memory. Examples the source cannot read
  // (skipped by it) are remembered and skipped again, and counted, in every epoch.
  FeatureCache(Model& model, int cut, BatchSource& source, int64_t batch, bool reference_kernels = false);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Shape sample_shape() const override { return feature_shape_; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  std::string origin() const override { return origin_; }
  std::vector<int32_t> labels() const override { return labels_; }
  // The order is epoch_order(size, seed, epoch, shuffle), as the sources use; `augment`
  // cannot be honoured and is an error.
  void start_epoch(uint64_t seed, int64_t epoch, bool shuffle, bool augment, int64_t skip = 0) override;
  int64_t next_batch(int64_t max, float* features, int32_t* labels) override;
  int64_t skipped() const override { return skipped_; }
  int64_t position() const override { return cursor_; }

  int cut() const { return cut_; }
  size_t bytes() const { return features_.size() * sizeof(float); }
  int64_t unreadable() const { return unreadable_; }  // examples the source could not read
  double build_seconds() const { return build_seconds_; }

 private:
  int cut_;
  Shape feature_shape_;
  int64_t floats_ = 0;  // per example
  std::vector<float> features_;  // [size, floats_], dataset order
  std::vector<int32_t> labels_;
  std::vector<bool> readable_;
  std::vector<std::string> class_names_;
  std::string origin_;
  int64_t unreadable_ = 0;
  double build_seconds_ = 0;

  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
  int64_t skipped_ = 0;
  bool started_ = false;
};

}  // namespace graft
