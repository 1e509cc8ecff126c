// Feature caching: where to cut, whether to, and the cache itself.
#include "runtime/feature_cache.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>

#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/human_bytes.h"

namespace graft {

namespace {

// The shape of one example of node n's output.
Shape example_shape(const Model& model, int n) {
  const Shape s = model.infer_shapes(1)[size_t(n)];
  return Shape(std::vector<int64_t>(s.dims.begin() + 1, s.dims.end()));
}

// The first node after `cut` that reads the batch's sequence lengths, or -1.
int first_length_reader_after(const Model& model, int cut) {
  for (int n = cut + 1; n < model.num_nodes(); ++n)
    if (model.nodes()[size_t(n)].layer->reads_sequence_lengths()) return n;
  return -1;
}

}  // namespace

FeatureCacheMode parse_feature_cache_mode(const std::string& text) {
  if (text == "auto") return FeatureCacheMode::Auto;
  if (text == "on") return FeatureCacheMode::On;
  if (text == "off") return FeatureCacheMode::Off;
  fail("--cache-features '", text, "': expected auto, on or off");
}

size_t default_feature_cache_budget() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return size_t{1} << 30;  // unknown: a modest 1 GiB
  return size_t(pages) / 4 * size_t(page);
}

FeatureCacheDecision decide_feature_cache(FeatureCacheMode mode, const Model& model, const std::vector<bool>& frozen,
                                          bool augment, const BatchSource& train, const BatchSource* validation,
                                          size_t budget_bytes) {
  FeatureCacheDecision d;
  if (mode == FeatureCacheMode::Off) return d;
  const FeatureCut cut = find_feature_cut(model, frozen);
  std::string why;
  Shape shape;
  const int64_t examples = train.size() + (validation ? validation->size() : 0);
  if (augment) {
    why = "the training data is augmented (--shear, --zoom, --rotation, --shift, --hflip, --vflip or "
          "--random-resized-crop), so the frozen layers see new inputs every epoch";
  } else if (cut.node < 0) {
    why = cut.why_not;
  } else if (const int reader = first_length_reader_after(model, cut.node); reader >= 0) {
    why = "'" + model.nodes()[size_t(reader)].name +
          "' reads the sequences' lengths, which cached features do not carry";
  } else {
    shape = example_shape(model, cut.node);
    d.bytes = size_t(examples) * size_t(shape.numel()) * sizeof(float);
    if (d.bytes > budget_bytes)
      why = "the cache would take " + human_bytes(d.bytes) + " of host memory (" + std::to_string(examples) +
            " examples of " + shape.str() + " floats after '" + model.nodes()[size_t(cut.node)].name +
            "'), over its budget of " + human_bytes(budget_bytes) + " (a quarter of physical memory)";
  }
  if (!why.empty()) {
    if (mode == FeatureCacheMode::On)
      fail("--cache-features on: cannot cache the frozen layers' outputs: ", why,
           ". Use --cache-features off (or auto, which falls back by itself)");
    d.bytes = 0;
    d.line = "feature cache: off: " + why;
    return d;
  }
  d.on = true;
  d.cut = cut.node;
  d.line = "feature cache: on, after '" + model.nodes()[size_t(cut.node)].name + "' (" + shape.str() +
           " per example): " + human_bytes(d.bytes) + " of host memory for " + std::to_string(train.size()) +
           " training" + (validation ? " and " + std::to_string(validation->size()) + " validation" : std::string()) +
           " examples; later epochs run only the layers after it" + (cut.note.empty() ? "" : " (" + cut.note + ")") +
           ". --cache-features off turns it off";
  return d;
}

FeatureCache::FeatureCache(Model& model, int cut, BatchSource& source, int64_t batch, bool reference_kernels)
    : cut_(cut), class_names_(source.class_names()), origin_(source.origin()) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t n_examples = source.size();
  labels_ = source.labels();
  GRAFT_ASSERT(int64_t(labels_.size()) == n_examples, "one label per example");
  readable_.assign(size_t(n_examples), false);
  feature_shape_ = example_shape(model, cut);
  floats_ = feature_shape_.numel();
  try {
    features_.resize(size_t(n_examples) * size_t(floats_));
  } catch (const std::bad_alloc&) {
    fail("feature cache of ", origin_, ": cannot allocate ", human_bytes(size_t(n_examples) * size_t(floats_) * sizeof(float)),
         " of host memory; use --cache-features off");
  }
  if (n_examples == 0) return;

  ExecutorOptions eo;
  eo.batch = std::clamp<int64_t>(batch, 1, n_examples);
  eo.training = false;
  eo.stop_after = cut;
  eo.reference_kernels = reference_kernels;
  Executor ex(model, eo);
  GRAFT_ASSERT(source.sample_shape().numel() == ex.input_floats(), "source examples of ", source.sample_shape().str(),
               " for a model input of ", model.sample_shape().str());
  const int64_t in = ex.input_floats();

  // One example per next_batch call: the source skips what it cannot read, and the last
  // position it consumed is the example it returned (dataset order: position == index).
  source.start_epoch(0, 0, /*shuffle=*/false, /*augment=*/false);
  std::vector<int64_t> rows;
  std::vector<int32_t> lengths;  // sequences: each row's, for the layers before the cut
  std::vector<int32_t> batch_labels;
  const auto full = static_cast<int32_t>(model.sample_shape()[0]);
  for (bool done = false; !done;) {
    rows.clear();
    lengths.clear();
    while (int64_t(rows.size()) < eo.batch) {
      const int64_t k = int64_t(rows.size());
      if (source.next_batch(1, ex.input() + k * in, ex.labels() + k) == 0) {
        done = true;
        break;
      }
      rows.push_back(source.position() - 1);
      lengths.push_back(source.batch_lengths() ? source.batch_lengths()[0] : full);
    }
    if (rows.empty()) break;
    ex.set_lengths(lengths.data(), int64_t(rows.size()));
    // The labels before forward(): on a device it hands out the other staging buffer.
    batch_labels.assign(ex.labels(), ex.labels() + rows.size());
    ex.forward(int64_t(rows.size()), /*training=*/false, 0);
    const float* out = ex.output();
    for (size_t j = 0; j < rows.size(); ++j) {
      const size_t row = size_t(rows[j]);
      std::memcpy(features_.data() + row * size_t(floats_), out + j * size_t(floats_), size_t(floats_) * sizeof(float));
      labels_[row] = batch_labels[j];
      readable_[row] = true;
    }
  }
  unreadable_ = int64_t(std::count(readable_.begin(), readable_.end(), false));
  GRAFT_ASSERT(unreadable_ == source.skipped(), "the cache found ", unreadable_, " unreadable examples, ",
               source.origin(), " skipped ", source.skipped());
  build_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void FeatureCache::start_epoch(uint64_t seed, int64_t epoch, bool shuffle, bool augment, int64_t skip) {
  if (augment) fail("the cached features of ", origin_, " cannot be augmented; use --cache-features off");
  order_ = order_for_epoch(seed, epoch, shuffle);
  cursor_ = std::clamp<int64_t>(skip, 0, int64_t(order_.size()));
  skipped_ = 0;
  started_ = true;
}

int64_t FeatureCache::next_batch(int64_t max, float* features, int32_t* labels) {
  GRAFT_ASSERT(started_, "next_batch before start_epoch");
  const int64_t end = int64_t(order_.size());
  int64_t n = 0;
  while (n < max && cursor_ < end) {
    const size_t e = size_t(order_[size_t(cursor_++)]);
    if (!readable_[e]) {  // as the source did: skipped and counted, the batch filled on
      ++skipped_;
      continue;
    }
    if (features)
      std::memcpy(features + size_t(n) * size_t(floats_), features_.data() + e * size_t(floats_),
                  size_t(floats_) * sizeof(float));
    if (labels) labels[n] = labels_[e];
    ++n;
  }
  return n;
}

}  // namespace graft
