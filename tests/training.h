// Helpers of the training suites (trainer_test, feature_cache_test, gpu/resume_test,
// checkpoint_test, layer_interface_test): a random labelled data set, a model's parameters
// as one vector, its logits on a batch.
#pragma once
#include <string>
#include <vector>

#include <algorithm>

#include "runtime/dataset.h"
#include "runtime/executor.h"
#include "runtime/model.h"
#include "tests/testing.h"

namespace graft::testing {

// n examples of `sample` uniform in [0, 1), labels uniform over `classes` named c0, c1, ...
inline Dataset random_dataset(int64_t n, int classes, Shape sample = Shape{8, 8, 1}) {
  Dataset d;
  std::vector<int64_t> dims{n};
  dims.insert(dims.end(), sample.dims.begin(), sample.dims.end());
  d.images = HostTensor(Shape(dims), random_floats(size_t(n * sample.numel()), 0.0f, 1.0f));
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(random_int(0, classes - 1));
  for (int c = 0; c < classes; ++c) d.class_names.push_back("c" + std::to_string(c));
  d.origin = "random";
  return d;
}

// A model's parameters, all of them in order, read back to the host (from a device too).
inline std::vector<float> params(const Model& m) {
  const float* p = m.host_params();
  return {p, p + m.total_param_count()};
}

// The model's logits for the n examples in x, in evaluation mode.
inline std::vector<float> eval_logits(Model& m, const std::vector<float>& x, int64_t n) {
  ExecutorOptions o;
  o.batch = n;
  o.training = false;
  Executor ex(m, o);
  std::copy(x.begin(), x.end(), ex.input());
  ex.forward(n, false, 0);
  return std::vector<float>(ex.output(), ex.output() + ex.output_shape(n).numel());
}

}  // namespace graft::testing
