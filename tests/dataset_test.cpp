// Datasets: Fashion-MNIST loading (the installed data set when present, generated files
// always), class lists, class and few-shot selection, seeded epoch order, batch gathering.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "runtime/dataset.h"
#include "base/error.h"
#include "tests/idx_writing.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using graft::testing::expect_error;
using graft::testing::idx_bytes;
using graft::testing::TempDir;
using graft::testing::write_gzip;
using graft::testing::write_plain;

namespace {

// A small dataset whose image i is filled with the value i, so selections can be traced.
graft::Dataset traced_dataset(const std::vector<int32_t>& labels, int num_classes, int h = 2, int w = 3, int c = 1) {
  graft::Dataset d;
  d.labels = labels;
  for (int k = 0; k < num_classes; ++k) d.class_names.push_back("class" + std::to_string(k));
  d.origin = "traced";
  const int64_t n = static_cast<int64_t>(labels.size());
  d.images = graft::HostTensor(graft::Shape{n, h, w, c});
  const int64_t per = int64_t{h} * w * c;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < per; ++j) d.images.values[static_cast<size_t>(i * per + j)] = float(i);
  return d;
}

std::vector<int32_t> random_labels(size_t n, int num_classes) {
  std::vector<int32_t> l(n);
  for (auto& x : l) x = graft::testing::random_int(0, num_classes - 1);
  return l;
}

}  // namespace

TEST(Dataset, LoadsInstalledFashionMnistTestSplit) {
  if (!fs::exists(graft::kFashionMnistDir))
    GTEST_SKIP() << graft::kFashionMnistDir << " is absent (apt-get install dataset-fashion-mnist to run this test)";
  const graft::Dataset d = graft::load_fashion_mnist(graft::kFashionMnistDir, false);
  EXPECT_EQ(d.size(), 10000);
  EXPECT_EQ(d.images.shape, (graft::Shape{10000, 28, 28, 1}));
  EXPECT_EQ(d.image_numel(), 784);
  EXPECT_EQ(d.num_classes(), 10);
  EXPECT_EQ(d.class_names.front(), "T-shirt/top");
  EXPECT_EQ(d.class_names.back(), "Ankle boot");
  std::vector<int> counts(10, 0);
  for (int32_t l : d.labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    ++counts[static_cast<size_t>(l)];
  }
  for (int c : counts) EXPECT_EQ(c, 1000);  // the test split is balanced
  const auto [lo, hi] = std::minmax_element(d.images.values.begin(), d.images.values.end());
  EXPECT_EQ(*lo, 0.0f);
  EXPECT_EQ(*hi, 1.0f);
}

TEST(Dataset, LoadsGeneratedFashionMnistPlainAndGzip) {
  TempDir dir;
  const uint32_t n = static_cast<uint32_t>(graft::testing::random_int(1, 40));
  std::vector<uint8_t> pixels(n * 28 * 28), labels(n);
  for (auto& p : pixels) p = static_cast<uint8_t>(graft::testing::random_int(0, 255));
  for (auto& l : labels) l = static_cast<uint8_t>(graft::testing::random_int(0, 9));
  write_plain(dir.file("t10k-images-idx3-ubyte"), idx_bytes({n, 28, 28}, pixels));
  write_gzip(dir.file("t10k-labels-idx1-ubyte.gz"), idx_bytes({n}, labels));
  const graft::Dataset d = graft::load_fashion_mnist(dir.path.string(), false);
  ASSERT_EQ(d.size(), int64_t{n});
  EXPECT_EQ(d.images.shape, (graft::Shape{int64_t{n}, 28, 28, 1}));
  for (size_t i = 0; i < pixels.size(); ++i) ASSERT_EQ(d.images.values[i], float(pixels[i]) / 255.0f) << i;
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(d.labels[i], labels[i]);
  EXPECT_EQ(d.class_names.size(), 10u);
  EXPECT_EQ(d.class_names[5], "Sandal");

  // The train split is not there: the error names the file and how to get it.
  expect_error([&] { graft::load_fashion_mnist(dir.path.string(), true); },
               {dir.file("train-images-idx3-ubyte"), "apt-get install dataset-fashion-mnist", "--data-dir"});
}

TEST(Dataset, FashionMnistInconsistentFilesAreRejected) {
  TempDir dir;
  write_plain(dir.file("train-images-idx3-ubyte"), idx_bytes({3, 28, 28}, std::vector<uint8_t>(3 * 784, 7)));
  write_plain(dir.file("train-labels-idx1-ubyte"), idx_bytes({2}, {1, 2}));
  expect_error([&] { graft::load_fashion_mnist(dir.path.string(), true); }, {"3 images", "2 labels"});
  write_plain(dir.file("train-labels-idx1-ubyte"), idx_bytes({3}, {1, 10, 2}));
  expect_error([&] { graft::load_fashion_mnist(dir.path.string(), true); },
               {"train-labels-idx1-ubyte", "label 10 at index 1"});
  write_plain(dir.file("train-images-idx3-ubyte"),
                       idx_bytes({3, 28, 27}, std::vector<uint8_t>(3 * 28 * 27, 7)));
  expect_error([&] { graft::load_fashion_mnist(dir.path.string(), true); }, {"28 x 27"});
}

TEST(Dataset, ParseClassListAcceptsRangesAndLists) {
  EXPECT_EQ(graft::parse_class_list("0-4", 10, "--classes"), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(graft::parse_class_list("5,7,9", 10, "--classes"), (std::vector<int>{5, 7, 9}));
  EXPECT_EQ(graft::parse_class_list("0-2,8", 10, "--classes"), (std::vector<int>{0, 1, 2, 8}));
  EXPECT_EQ(graft::parse_class_list("9,3", 10, "--classes"), (std::vector<int>{9, 3}));
  EXPECT_EQ(graft::parse_class_list(" 4 - 6 , 1 ", 10, "--classes"), (std::vector<int>{4, 5, 6, 1}));
  EXPECT_EQ(graft::parse_class_list("3-3", 10, "--classes"), (std::vector<int>{3}));
}

TEST(Dataset, ParseClassListRejectsBadSpecsNamingTheFlag) {
  const std::string f = "--target-classes";
  expect_error([&] { graft::parse_class_list("", 10, f); }, {f, "empty"});
  expect_error([&] { graft::parse_class_list("  ", 10, f); }, {f, "empty"});
  expect_error([&] { graft::parse_class_list("1,,2", 10, f); }, {f, "empty entry"});
  expect_error([&] { graft::parse_class_list("1,", 10, f); }, {f, "empty entry"});
  expect_error([&] { graft::parse_class_list("10", 10, f); }, {f, "class 10", "out of range", "0-9"});
  expect_error([&] { graft::parse_class_list("2-12", 10, f); }, {f, "12", "0-9"});
  expect_error([&] { graft::parse_class_list("99999999999999999999", 10, f); }, {f, "out of range"});
  expect_error([&] { graft::parse_class_list("1,2,1", 10, f); }, {f, "class 1", "twice"});
  expect_error([&] { graft::parse_class_list("0-4,3", 10, f); }, {f, "class 3", "twice"});
  expect_error([&] { graft::parse_class_list("5-2", 10, f); }, {f, "'5-2'", "reversed"});
  expect_error([&] { graft::parse_class_list("cat", 10, f); }, {f, "'cat'", "not a class"});
  expect_error([&] { graft::parse_class_list("-1", 10, f); }, {f, "'-1'"});
  expect_error([&] { graft::parse_class_list("1-2-3", 10, f); }, {f, "'1-2-3'"});
  expect_error([&] { graft::parse_class_list("3-", 10, f); }, {f, "'3-'"});
  expect_error([&] { graft::parse_class_list("2.5", 10, f); }, {f, "'2.5'"});
  expect_error([&] { graft::parse_class_list("+3", 10, f); }, {f, "'+3'"});
}

TEST(Dataset, SelectClassesKeepsOrderAndRelabels) {
  const auto labels = random_labels(200, 6);
  const graft::Dataset d = traced_dataset(labels, 6);
  const std::vector<int> pick = {4, 1};
  const graft::Dataset s = graft::select_classes(d, pick);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"class4", "class1"}));
  int64_t expected = 0;
  for (int32_t l : labels) expected += (l == 4 || l == 1);
  ASSERT_EQ(s.size(), expected);
  EXPECT_EQ(s.images.shape, (graft::Shape{expected, 2, 3, 1}));
  int64_t prev = -1;
  for (int64_t i = 0; i < s.size(); ++i) {
    const int64_t src = static_cast<int64_t>(s.images.values[static_cast<size_t>(i * 6)]);
    EXPECT_GT(src, prev);  // dataset order kept
    prev = src;
    const int32_t old = labels[static_cast<size_t>(src)];
    EXPECT_EQ(s.labels[static_cast<size_t>(i)], old == 4 ? 0 : 1);
  }
  expect_error([&] { graft::select_classes(d, {1, 6}); }, {"6", "out of range"});
  expect_error([&] { graft::select_classes(d, {2, 2}); }, {"2", "twice"});
}

TEST(Dataset, FewShotCountsDeterminismAndOrder) {
  const auto labels = random_labels(500, 4);
  const graft::Dataset d = traced_dataset(labels, 4);
  const int k = graft::testing::random_int(1, 20);
  const uint64_t seed = graft::testing::rng()();
  const graft::Dataset a = graft::few_shot(d, k, seed);
  const graft::Dataset b = graft::few_shot(d, k, seed);
  ASSERT_EQ(a.size(), 4 * k);
  EXPECT_EQ(a.class_names, d.class_names);
  std::vector<int> counts(4, 0);
  int64_t prev = -1;
  std::vector<int64_t> sources;
  for (int64_t i = 0; i < a.size(); ++i) {
    const int64_t src = static_cast<int64_t>(a.images.values[static_cast<size_t>(i * 6)]);
    EXPECT_GT(src, prev);
    prev = src;
    sources.push_back(src);
    EXPECT_EQ(a.labels[static_cast<size_t>(i)], labels[static_cast<size_t>(src)]);
    ++counts[static_cast<size_t>(a.labels[static_cast<size_t>(i)])];
  }
  for (int c : counts) EXPECT_EQ(c, k);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.images.values, b.images.values);

  // Another seed draws other examples (with 500 examples and k <= 20, the same draw for
  // every class is vanishingly unlikely).
  const graft::Dataset other = graft::few_shot(d, k, seed + 1);
  EXPECT_NE(other.images.values, a.images.values);
}

TEST(Dataset, FewShotErrorsNameClassAndCount) {
  std::vector<int32_t> labels(30, 0);
  for (int i = 0; i < 3; ++i) labels[static_cast<size_t>(i * 10)] = 2;
  for (int i = 0; i < 10; ++i) labels[static_cast<size_t>(i * 2 + 1)] = 1;
  graft::Dataset d = traced_dataset(labels, 3);
  d.class_names = {"T-shirt/top", "Trouser", "Sandal"};
  expect_error([&] { graft::few_shot(d, 5, 1); }, {"'Sandal'", "only 3", "5"});
  expect_error([&] { graft::few_shot(d, 0, 1); }, {"at least 1", "0"});
  expect_error([&] { graft::few_shot(d, -2, 1); }, {"at least 1"});
  EXPECT_EQ(graft::few_shot(d, 3, 1).size(), 9);
}

TEST(Dataset, EpochOrderIsADeterministicPermutation) {
  const int64_t n = graft::testing::random_int(50, 3000);
  const uint64_t seed = graft::testing::rng()();
  const auto e0 = graft::epoch_order(n, seed, 0, true);
  const auto e0b = graft::epoch_order(n, seed, 0, true);
  const auto e1 = graft::epoch_order(n, seed, 1, true);
  const auto other_seed = graft::epoch_order(n, seed ^ 0x9e3779b97f4a7c15ull, 0, true);
  std::vector<int64_t> identity(static_cast<size_t>(n));
  std::iota(identity.begin(), identity.end(), 0);
  for (const auto* o : {&e0, &e1, &other_seed}) {
    auto sorted = *o;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity);
  }
  EXPECT_EQ(e0, e0b);
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, other_seed);
  EXPECT_NE(e0, identity);
  EXPECT_EQ(graft::epoch_order(n, seed, 3, false), identity);
  EXPECT_TRUE(graft::epoch_order(0, seed, 0, true).empty());
  EXPECT_EQ(graft::epoch_order(1, seed, 0, true), std::vector<int64_t>{0});
}

TEST(Dataset, GatherBatchCopiesImagesAndLabels) {
  const auto labels = random_labels(40, 5);
  const graft::Dataset d = traced_dataset(labels, 5, 3, 2, 3);
  const std::vector<int64_t> idx = {7, 0, 39, 7};
  std::vector<float> images = graft::testing::poisoned(idx.size() * 18);
  std::vector<int32_t> out(idx.size(), -1);
  graft::gather_batch(d, idx, images.data(), out.data());
  for (size_t i = 0; i < idx.size(); ++i) {
    EXPECT_EQ(out[i], labels[static_cast<size_t>(idx[i])]);
    for (size_t j = 0; j < 18; ++j) ASSERT_EQ(images[i * 18 + j], float(idx[i]));
  }
  const std::vector<int64_t> bad = {1, 40};
  expect_error([&] { graft::gather_batch(d, bad, images.data(), out.data()); }, {"index 40", "40 examples"});
}
