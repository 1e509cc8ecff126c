// Evaluation with the details a user reads: loss, top-1 and top-5 accuracy, per-class
// accuracy and the confusion matrix, over a whole BatchSource in order; and what a
// validation pass keeps for TensorBoard (the confusion matrix, misclassified examples).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/batch_source.h"
#include "runtime/executor.h"
#include "runtime/model.h"

namespace graft {

struct EvaluationReport {
  int64_t examples = 0;
  double loss = 0;
  double top1 = 0;
  double top5 = 0;  // top-min(5, classes)
  std::vector<std::string> class_names;
  std::vector<int64_t> per_class_count;
  std::vector<double> per_class_accuracy;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]

  std::string to_json() const;
  std::string to_text() const;  // the table graft eval prints
};

// The confusion matrix of a validation pass and its first misclassified examples (inputs
// kept only when they are images: not for a feature cache's features).
struct ValidationExamples {
  struct Example {
    int64_t index = 0;  // in the source's order
    int label = 0, predicted = 0;
    std::vector<float> input;  // one sample, [H, W, C]; empty when not kept
  };
  int classes = 0;
  int max_kept = 16;
  bool keep_inputs = true;
  Shape sample;  // [H, W, C] of the inputs
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  std::vector<Example> misclassified;
  int64_t seen = 0;

  ValidationExamples(int classes_, Shape sample_, bool keep_inputs_);
  // One batch: n rows of `logits` (classes each), their labels and inputs (sample floats each).
  void add(const float* logits, const int32_t* labels, const float* inputs, int64_t n);
  // The kept examples' images read from `source` in its unshuffled order, up to the last of
  // them (when the pass itself read features): `batch` examples at a time.
  void read_inputs(BatchSource& source, int64_t batch);
};

EvaluationReport evaluate_detailed(Model& model, BatchSource& data, int64_t batch, LossKind loss);

// The k largest of `scores` (descending; ties keep the lower index first).
std::vector<int> top_k(const float* scores, int count, int k);
// Softmax of one row of logits, in double for stability.
std::vector<double> softmax(const float* logits, int count);

}  // namespace graft
