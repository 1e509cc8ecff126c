// BatchSource: where the trainer and evaluation get batches from. An in-memory Dataset
// (Fashion-MNIST) and a decoded-on-the-fly image folder both implement it. An epoch's
// order and augmentation are pure functions of (seed, epoch), so a resumed run can skip
// straight to where it stopped and see the same batches.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/common/warp_math.h"
#include "base/error.h"
#include "runtime/dataset.h"
#include "runtime/shard.h"
#include "runtime/tensor.h"

namespace graft {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t size() const = 0;
  virtual Shape sample_shape() const = 0;  // [H, W, C], or [steps, features] for sequences
  // What an example is, for messages: "sequences" ([steps, features]) or "images".
  const char* example_noun() const { return sample_shape().rank() == 2 ? "sequences" : "images"; }
  virtual const std::vector<std::string>& class_names() const = 0;
  virtual std::string origin() const = 0;   // for messages: a path or "fashion-mnist train"
  // Labels of every example in dataset order (class weights, per-class counts).
  virtual std::vector<int32_t> labels() const = 0;

  // Starts an epoch whose order is shuffled by (seed, epoch) when `shuffle`, augmented by
  // (seed, epoch, example) when `augment`, skipping the first `skip` examples of its order.
  virtual void start_epoch(uint64_t seed, int64_t epoch, bool shuffle, bool augment, int64_t skip = 0) = 0;
  // Fills up to `max` examples into images [n, H, W, C] and labels [n]; returns n, 0 at the
  // end of the epoch.
  virtual int64_t next_batch(int64_t max, float* images, int32_t* labels) = 0;
  // Sequences: the lengths of the examples the last next_batch returned (n of them, each
  // 1..steps), valid until the next call; null when every example has all its steps (image
  // sources). The caller hands them to the executor with the batch (Executor::set_lengths).
  virtual const int32_t* batch_lengths() const { return nullptr; }
  // Examples skipped in this epoch because they could not be read (--bad-images skip).
  virtual int64_t skipped() const { return 0; }
  // Positions of this epoch's order consumed so far, unreadable ones included: what a
  // resumed run passes to start_epoch as `skip`.
  virtual int64_t position() const = 0;
  // The caller will read one more epoch at most (a feature-cache build): a source may drop
  // what only later epochs would use (an in-memory decoded-image cache).
  virtual void expect_single_pass() {}

  // Raw batches, for augmenting on the device: sources of RGB images that can hand out each
  // example as uint8 at the input size plus its transform (warp, flips) and normalization,
  // which Ops::augment_batch turns into exactly what next_batch gives. Call
  // set_raw_batches(true) before start_epoch; then next_raw_batch replaces next_batch.
  virtual bool has_raw_batches() const { return false; }
  virtual void set_raw_batches(bool on);
  virtual math::WarpNorm raw_normalization() const { return {}; }
  // images [n, H, W, 3] uint8, warps [n], labels [n]; as next_batch otherwise.
  virtual int64_t next_raw_batch(int64_t max, uint8_t* images, math::WarpExample* warps, int32_t* labels);

  int num_classes() const { return static_cast<int>(class_names().size()); }

  // Data-parallel training: this process reads only its rank's rows of every global batch
  // (runtime/shard.h). Set before start_epoch; positions (start_epoch's skip, position())
  // are then in the rank's own order.
  void set_shard(const Shard& s) { shard_ = s; }
  const Shard& shard() const { return shard_; }

 protected:
  // The order an epoch reads: epoch_order(size(), ...), the rank's part of it when sharded.
  std::vector<int64_t> order_for_epoch(uint64_t seed, int64_t epoch, bool shuffle) const {
    return shard_.select(epoch_order(size(), seed, epoch, shuffle));
  }

 private:
  Shard shard_;
};

inline void BatchSource::set_raw_batches(bool on) {
  if (on) fail(origin(), " has no raw image batches to augment on the device; use --augment-on cpu");
}
inline int64_t BatchSource::next_raw_batch(int64_t, uint8_t*, math::WarpExample*, int32_t*) {
  fail(origin(), " has no raw image batches");
}

// A Dataset held in memory (no augmentation).
class InMemorySource final : public BatchSource {
 public:
  explicit InMemorySource(Dataset d) : data_(std::move(d)) {}
  int64_t size() const override { return data_.size(); }
  Shape sample_shape() const override {
    const auto& dims = data_.images.shape.dims;
    return Shape(std::vector<int64_t>(dims.begin() + 1, dims.end()));
  }
  const std::vector<std::string>& class_names() const override { return data_.class_names; }
  std::string origin() const override { return data_.origin; }
  std::vector<int32_t> labels() const override { return data_.labels; }
  void start_epoch(uint64_t seed, int64_t epoch, bool shuffle, bool /*augment*/, int64_t skip) override {
    order_ = order_for_epoch(seed, epoch, shuffle);
    cursor_ = std::clamp<int64_t>(skip, 0, static_cast<int64_t>(order_.size()));
  }
  int64_t next_batch(int64_t max, float* images, int32_t* labels) override {
    const int64_t n = std::min<int64_t>(max, static_cast<int64_t>(order_.size()) - cursor_);
    if (n <= 0) return 0;
    const auto rows = std::span<const int64_t>(order_).subspan(size_t(cursor_), size_t(n));
    gather_batch(data_, rows, images, labels);
    if (!data_.lengths.empty()) {
      lengths_.resize(size_t(n));
      for (size_t i = 0; i < rows.size(); ++i) lengths_[i] = data_.lengths[size_t(rows[i])];
    }
    cursor_ += n;
    return n;
  }
  const int32_t* batch_lengths() const override { return data_.lengths.empty() ? nullptr : lengths_.data(); }
  int64_t position() const override { return cursor_; }
  const Dataset& dataset() const { return data_; }

 private:
  Dataset data_;
  std::vector<int64_t> order_;
  std::vector<int32_t> lengths_;  // the last batch's, when the data has lengths
  int64_t cursor_ = 0;
};

}  // namespace graft
