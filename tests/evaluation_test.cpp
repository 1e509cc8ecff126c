// Detailed evaluation against a brute-force count over the model's own logits.
#include <numeric>

#include "layers/zoo.h"
#include "runtime/evaluation.h"
#include "tests/testing.h"

namespace graft {
namespace {

TEST(Evaluation, TopKAndSoftmax) {
  const auto v = testing::random_floats(9);
  const auto top = top_k(v.data(), 9, 4);
  ASSERT_EQ(top.size(), 4u);
  for (size_t i = 1; i < top.size(); ++i) EXPECT_GE(v[size_t(top[i - 1])], v[size_t(top[i])]);
  for (int i = 0; i < 9; ++i) {
    if (std::find(top.begin(), top.end(), i) == top.end()) {
      EXPECT_LE(v[size_t(i)], v[size_t(top.back())]);
    }
  }
  const float tie[3] = {1.0f, 2.0f, 2.0f};
  EXPECT_EQ(top_k(tie, 3, 1)[0], 1) << "ties keep the lower index first";
  const auto p = softmax(v.data(), 9);
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-12);
  const float huge[2] = {1000.0f, 0.0f};
  EXPECT_NEAR(softmax(huge, 2)[0], 1.0, 1e-12);
}

TEST(Evaluation, ReportMatchesABruteForceCount) {
  HostPool pool;
  const int classes = 7;
  auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = classes,
                                 .seed = testing::test_seed()},
                       pool);
  Dataset d;
  const int64_t n = 23;
  d.images = HostTensor(Shape{n, 8, 8, 1}, testing::random_floats(size_t(n * 64), 0, 1));
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(testing::random_int(0, classes - 1));
  for (const char* name : {"a", "b", "c", "d", "e", "f", "g"}) d.class_names.emplace_back(name);
  InMemorySource source(d);
  const auto r = evaluate_detailed(*m, source, 5, LossKind::CrossEntropy);

  ExecutorOptions o;
  o.batch = n;
  o.training = false;
  Executor ex(*m, o);
  std::copy(d.images.values.begin(), d.images.values.end(), ex.input());
  ex.forward(n, false, 0);
  int64_t top1 = 0, top5 = 0;
  std::vector<std::vector<int64_t>> confusion(classes, std::vector<int64_t>(classes, 0));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = ex.output() + i * classes;
    std::vector<int> order(classes);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    const int label = d.labels[size_t(i)];
    top1 += order[0] == label;
    top5 += std::find(order.begin(), order.begin() + 5, label) != order.begin() + 5;
    ++confusion[size_t(label)][size_t(order[0])];
  }
  EXPECT_EQ(r.examples, n);
  EXPECT_DOUBLE_EQ(r.top1, double(top1) / double(n));
  EXPECT_DOUBLE_EQ(r.top5, double(top5) / double(n));
  EXPECT_EQ(r.confusion, confusion);
  for (int c = 0; c < classes; ++c) {
    if (r.per_class_count[size_t(c)]) {
      EXPECT_DOUBLE_EQ(r.per_class_accuracy[size_t(c)],
                       double(confusion[size_t(c)][size_t(c)]) / double(r.per_class_count[size_t(c)]));
    }
  }
  EXPECT_NE(r.to_json().find("\"confusion\""), std::string::npos);
  EXPECT_NE(r.to_text().find("confusion matrix"), std::string::npos);
}

}  // namespace
}  // namespace graft
