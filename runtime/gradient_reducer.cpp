// Buckets of gradients summed over ranks while backward goes on.
#include "runtime/gradient_reducer.h"

#include <algorithm>

#include "base/error.h"

namespace graft {

GradientReducer::GradientReducer(Communicator& comm, Executor& ex, size_t bucket_bytes) : comm_(comm), ex_(ex) {
  const auto cap = static_cast<int64_t>(std::max<size_t>(bucket_bytes / sizeof(float), 1));
  // From the last node down: node ranges are contiguous and ascend with the node, so a
  // bucket is one range [begin, end) growing downwards.
  Bucket open{0, 0, 0};
  bool have = false;
  for (int k = ex.model().num_nodes() - 1; k >= 0; --k) {
    const auto [first, last] = ex.gradient_range(k);
    if (first == last) continue;
    if (!have) {
      open = Bucket{first, last, k};
      have = true;
    } else {
      GRAFT_ASSERT(last <= open.begin, "gradient ranges out of node order at node ", k);
      open.begin = first;
      open.last_node = k;
    }
    if (open.end - open.begin >= cap) {
      buckets_.push_back(open);
      have = false;
    }
  }
  if (have) buckets_.push_back(open);
  ex_.set_backward_listener([this](int node) { node_done(node); });
}

GradientReducer::~GradientReducer() { ex_.set_backward_listener(nullptr); }

void GradientReducer::begin_step(float prescale) {
  next_ = 0;
  prescale_ = prescale;
}

void GradientReducer::node_done(int node) {
  // Backward runs from the last node down, so every bucket whose lowest node is at or
  // above `node` is complete.
  while (next_ < buckets_.size() && buckets_[next_].last_node >= node) start(next_++);
}

void GradientReducer::start(size_t b) {
  const Bucket& bucket = buckets_[b];
  if (prescale_ != 1.0f) ex_.ops().scale(bucket.end - bucket.begin, prescale_, ex_.gradients() + bucket.begin);
  comm_.start_sum(ex_.gradients() + bucket.begin, size_t(bucket.end - bucket.begin), "the gradient sum");
}

void GradientReducer::finish(float scale) {
  while (next_ < buckets_.size()) start(next_++);
  comm_.wait_all("the gradient sum");
  if (scale != 1.0f) ex_.ops().scale(ex_.trainable_count(), scale, ex_.gradients());
}

}  // namespace graft
