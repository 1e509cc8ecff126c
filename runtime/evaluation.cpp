// Detailed evaluation.
#include "runtime/evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace graft {

std::vector<int> top_k(const float* scores, int count, int k) {
  std::vector<int> idx(static_cast<size_t>(count));
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, count);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

std::vector<double> softmax(const float* logits, int count) {
  double max = logits[0];
  for (int i = 1; i < count; ++i) max = std::max(max, double(logits[i]));
  std::vector<double> p(static_cast<size_t>(count));
  double sum = 0;
  for (int i = 0; i < count; ++i) sum += p[size_t(i)] = std::exp(double(logits[i]) - max);
  for (auto& x : p) x /= sum;
  return p;
}

EvaluationReport evaluate_detailed(Model& model, BatchSource& data, int64_t batch, LossKind loss) {
  if (data.size() == 0) fail("nothing to evaluate: ", data.origin(), " has no examples");
  const int classes = data.num_classes();
  if (classes != model.num_outputs())
    fail("model ", model.architecture(), " has ", model.num_outputs(), " outputs but ", data.origin(), " has ", classes,
         " classes");
  ExecutorOptions eo;
  eo.batch = std::min<int64_t>(batch, data.size());
  eo.training = false;
  eo.loss = loss;
  Executor ex(model, eo);
  EvaluationReport r;
  r.class_names = data.class_names();
  r.per_class_count.assign(size_t(classes), 0);
  r.confusion.assign(size_t(classes), std::vector<int64_t>(size_t(classes), 0));
  int64_t top5_hits = 0;
  data.start_epoch(0, 0, /*shuffle=*/false, /*augment=*/false);
  std::vector<int32_t> labels;
  while (const int64_t n = data.next_batch(eo.batch, ex.input(), ex.labels())) {
    // The labels before forward(): on a device it hands out the other staging buffer.
    labels.assign(ex.labels(), ex.labels() + n);
    ex.set_lengths(data.batch_lengths(), n);  // sequences: the batch's lengths (null for images)
    ex.forward(n, false, 0);
    ex.accumulate_metrics(n);
    const float* logits = ex.output();  // on a device: downloaded once for the batch
    for (int64_t i = 0; i < n; ++i) {
      const auto best = top_k(logits + i * classes, classes, 5);
      const int label = labels[size_t(i)];
      GRAFT_ASSERT(label >= 0 && label < classes, "label ", label, " of example ", i, " outside 0..", classes - 1);
      ++r.per_class_count[size_t(label)];
      ++r.confusion[size_t(label)][size_t(best[0])];
      top5_hits += std::find(best.begin(), best.end(), label) != best.end();
    }
  }
  const Metrics m = ex.read_metrics();
  r.examples = static_cast<int64_t>(m.count);
  r.loss = m.loss();
  r.top1 = m.accuracy();
  r.top5 = double(top5_hits) / std::max(m.count, 1.0);
  for (int c = 0; c < classes; ++c)
    r.per_class_accuracy.push_back(r.per_class_count[size_t(c)]
                                       ? double(r.confusion[size_t(c)][size_t(c)]) / double(r.per_class_count[size_t(c)])
                                       : 0.0);
  return r;
}

ValidationExamples::ValidationExamples(int classes_, Shape sample_, bool keep_inputs_)
    : classes(classes_),
      keep_inputs(keep_inputs_),
      sample(std::move(sample_)),
      confusion(size_t(classes_), std::vector<int64_t>(size_t(classes_), 0)) {}

void ValidationExamples::add(const float* logits, const int32_t* labels, const float* inputs, int64_t n) {
  const int64_t floats = sample.numel();
  for (int64_t i = 0; i < n; ++i, ++seen) {
    const int label = labels[i];
    const int predicted = top_k(logits + i * classes, classes, 1)[0];
    if (label < 0 || label >= classes) continue;  // the loss has refused it already
    ++confusion[size_t(label)][size_t(predicted)];
    if (label == predicted || int(misclassified.size()) >= max_kept) continue;
    Example e{seen, label, predicted, {}};
    if (keep_inputs && inputs) e.input.assign(inputs + i * floats, inputs + (i + 1) * floats);
    misclassified.push_back(std::move(e));
  }
}

void ValidationExamples::read_inputs(BatchSource& source, int64_t batch) {
  if (misclassified.empty()) return;
  const int64_t floats = sample.numel();
  GRAFT_ASSERT(source.sample_shape().numel() == floats);
  std::vector<float> images(static_cast<size_t>(batch * floats));
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  source.start_epoch(0, 0, /*shuffle=*/false, /*augment=*/false);
  size_t next = 0;  // the kept examples are in order
  for (int64_t first = 0; next < misclassified.size();) {
    const int64_t n = source.next_batch(batch, images.data(), labels.data());
    if (n == 0) break;
    for (; next < misclassified.size() && misclassified[next].index < first + n; ++next) {
      const int64_t row = misclassified[next].index - first;
      misclassified[next].input.assign(images.begin() + row * floats, images.begin() + (row + 1) * floats);
    }
    first += n;
  }
}

std::string EvaluationReport::to_json() const {
  nlohmann::json j{{"examples", examples}, {"loss", loss},           {"accuracy", top1},
                   {"top5", top5},         {"classes", class_names}, {"confusion", confusion}};
  for (size_t c = 0; c < class_names.size(); ++c) j["per_class"][class_names[c]] = per_class_accuracy[c];
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);  // class names are folder names
}

std::string EvaluationReport::to_text() const {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "loss %.4f  accuracy %.2f%%  top-%zu %.2f%%  (%lld examples)\n", loss, 100 * top1,
                std::min<size_t>(5, class_names.size()), 100 * top5, static_cast<long long>(examples));
  out += line;
  out += "\nper class:\n";
  for (size_t c = 0; c < class_names.size(); ++c) {
    std::snprintf(line, sizeof line, "  %-16s %6.2f%%  (%lld)\n", class_names[c].c_str(), 100 * per_class_accuracy[c],
                  static_cast<long long>(per_class_count[c]));
    out += line;
  }
  out += "\nconfusion matrix (rows: true class, columns: predicted):\n";
  std::snprintf(line, sizeof line, "  %-16s", "");
  out += line;
  for (size_t c = 0; c < class_names.size(); ++c) {
    std::snprintf(line, sizeof line, " %6zu", c);
    out += line;
  }
  out += "\n";
  for (size_t t = 0; t < class_names.size(); ++t) {
    std::snprintf(line, sizeof line, "  %-2zu %-13.13s", t, class_names[t].c_str());
    out += line;
    for (size_t p = 0; p < class_names.size(); ++p) {
      std::snprintf(line, sizeof line, " %6lld", static_cast<long long>(confusion[t][p]));
      out += line;
    }
    out += "\n";
  }
  return out;
}

}  // namespace graft
