// The C API (include/graft/graft.h) driven from C++: the same training as the C++ API, bit
// for bit; every mistake a status and a message on the handle, never a crash; and the
// header compiles as C99 on its own.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "graft/graft.h"
#include "graft/graft.hpp"
#include "tests/testing.h"

namespace graft {
namespace {

struct Handle {
  graft_model* m = nullptr;
  ~Handle() { graft_model_destroy(m); }
};

TEST(CApi, TrainsAsTheCppApiBitForBit) {
  const int64_t n = testing::random_int(2, 10);
  const int classes = testing::random_int(2, 6);
  const uint64_t seed = testing::test_seed();
  const auto images = testing::random_floats(size_t(n) * 28 * 28, 0.0f, 1.0f);
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(testing::random_int(0, classes - 1));
  const int64_t shape[4] = {n, 28, 28, 1};
  const int64_t input[3] = {28, 28, 1};

  Handle h;
  ASSERT_EQ(graft_model_create("fmnist_cnn", input, classes, "flatten,dense:8,relu,dense:N", seed, GRAFT_DEVICE_CPU, &h.m),
            GRAFT_OK)
      << graft_model_last_error(h.m);
  ASSERT_EQ(graft_model_freeze(h.m, "conv1"), GRAFT_OK) << graft_model_last_error(h.m);
  ASSERT_EQ(graft_model_configure(h.m, n, "sgd", 0.05f, 0.9f, 1e-4f), GRAFT_OK) << graft_model_last_error(h.m);

  api::Model cpp(api::ModelSpec{.architecture = "fmnist_cnn", .input = {28, 28, 1}, .classes = classes,
                                .head = "flatten,dense:8,relu,dense:N", .seed = seed});
  cpp.freeze({"conv1"});
  api::TrainSettings s;
  s.batch = n;
  s.optimizer = {.kind = "sgd", .lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f};
  cpp.configure(s);
  api::Batch b{.images = images.data(), .labels = labels.data(), .shape = {n, 28, 28, 1}};
  for (int step = 0; step < 3; ++step) {
    double loss = -1;
    ASSERT_EQ(graft_model_train_step(h.m, images.data(), labels.data(), shape, GRAFT_MEMORY_HOST, nullptr, &loss),
              GRAFT_OK)
        << graft_model_last_error(h.m);
    EXPECT_STREQ(graft_model_last_error(h.m), "");
    EXPECT_EQ(loss, cpp.train_step(b).loss);
  }
  EXPECT_EQ(graft_model_step(h.m), 3);
  std::vector<float> from_c(size_t(n * classes)), from_cpp(size_t(n * classes));
  ASSERT_EQ(graft_model_forward(h.m, images.data(), shape, GRAFT_MEMORY_HOST, nullptr, from_c.data(), GRAFT_MEMORY_HOST),
            GRAFT_OK);
  cpp.forward(b, from_cpp.data());
  EXPECT_EQ(from_c, from_cpp);
  double loss = 0, accuracy = -1;
  ASSERT_EQ(graft_model_evaluate(h.m, images.data(), labels.data(), shape, GRAFT_MEMORY_HOST, nullptr, &loss, &accuracy),
            GRAFT_OK);
  EXPECT_EQ(accuracy, cpp.evaluate(b).accuracy);
  uint64_t peak = 0;
  ASSERT_EQ(graft_model_planned_bytes(h.m, &peak), GRAFT_OK);
  EXPECT_EQ(peak, cpp.planned_memory().peak);
}

TEST(CApi, MistakesAreStatusesWithMessages) {
  EXPECT_EQ(graft_model_freeze(nullptr, "x"), GRAFT_ERROR_NULL_HANDLE);
  EXPECT_TRUE(testing::has(graft_model_last_error(nullptr), "null"));
  EXPECT_EQ(graft_model_step(nullptr), -1);
  EXPECT_EQ(graft_model_create("fmnist_cnn", nullptr, 10, nullptr, 0, GRAFT_DEVICE_CPU, nullptr), GRAFT_ERROR_NULL_HANDLE);

  {  // a failed create still gives a handle with the message
    Handle h;
    EXPECT_EQ(graft_model_create("resnet51", nullptr, 10, nullptr, 0, GRAFT_DEVICE_CPU, &h.m), GRAFT_ERROR);
    ASSERT_NE(h.m, nullptr);
    EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "resnet51"));
    EXPECT_EQ(graft_model_freeze(h.m, "conv*"), GRAFT_ERROR);
    EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "holds no model"));
    Handle nameless;
    EXPECT_EQ(graft_model_create(nullptr, nullptr, 10, nullptr, 0, GRAFT_DEVICE_CPU, &nameless.m), GRAFT_ERROR);
    EXPECT_TRUE(testing::has(graft_model_last_error(nameless.m), "architecture is null"));
    Handle bad_device;
    EXPECT_EQ(graft_model_create("fmnist_cnn", nullptr, 10, nullptr, 0, 7, &bad_device.m), GRAFT_ERROR);
    EXPECT_TRUE(testing::has(graft_model_last_error(bad_device.m), "GRAFT_DEVICE_CPU"));
  }

  Handle h;
  ASSERT_EQ(graft_model_create("fmnist_cnn", nullptr, 10, nullptr, testing::test_seed(), GRAFT_DEVICE_CPU, &h.m), GRAFT_OK);
  ASSERT_EQ(graft_model_configure(h.m, 4, "adam", 1e-3f, 0, 0), GRAFT_OK);
  const auto images = testing::random_floats(4 * 28 * 28);
  const int32_t labels[4] = {0, 1, 2, 3};
  const int64_t shape[4] = {4, 28, 28, 1};
  const int64_t wrong[4] = {4, 32, 32, 1};
  EXPECT_EQ(graft_model_train_step(h.m, images.data(), labels, wrong, GRAFT_MEMORY_HOST, nullptr, nullptr), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "[4, 32, 32, 1]")) << graft_model_last_error(h.m);
  EXPECT_EQ(graft_model_train_step(h.m, images.data(), labels, nullptr, GRAFT_MEMORY_HOST, nullptr, nullptr), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "shape_nhwc is null"));
  EXPECT_EQ(graft_model_train_step(h.m, nullptr, labels, shape, GRAFT_MEMORY_HOST, nullptr, nullptr), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "Batch::images is null"));
  EXPECT_EQ(graft_model_train_step(h.m, images.data(), labels, shape, 5, nullptr, nullptr), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "GRAFT_MEMORY_HOST"));
  EXPECT_EQ(graft_model_train_step(h.m, images.data(), labels, shape, GRAFT_MEMORY_DEVICE, nullptr, nullptr), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "device memory")) << graft_model_last_error(h.m);
  EXPECT_EQ(graft_model_load(h.m, "/nonexistent/w.safetensors", 0), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "/nonexistent/w.safetensors"));
  EXPECT_EQ(graft_model_train_step(h.m, images.data(), labels, shape, GRAFT_MEMORY_HOST, nullptr, nullptr), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "cannot be used"));
  EXPECT_EQ(graft_model_configure(h.m, 4, nullptr, 1e-3f, 0, 0), GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "optimizer is null"));
}

// Sequence models through the C API: the same steps, logits and accuracy as the C++ API with
// the same lengths, from a model created by spec and {steps, features}; and one created as
// {steps, features, 1} by graft_model_create takes the same batches.
TEST(CApi, SequenceModelsTrainAsTheCppApiWithLengths) {
  const int64_t steps = testing::random_int(3, 7), features = testing::random_int(2, 5), n = testing::random_int(2, 6);
  const int classes = testing::random_int(2, 5);
  const uint64_t seed = testing::test_seed();
  const std::string spec = testing::random_int(0, 1) ? "gru:6,bi,mean,dense:N" : "lstm:6x2,last,dense:N";
  const auto x = testing::random_floats(size_t(n * steps * features));
  std::vector<int32_t> lengths, labels;
  for (int64_t i = 0; i < n; ++i) {
    lengths.push_back(int32_t(i == 0 ? steps - 1 : testing::random_int(1, int(steps))));
    labels.push_back(testing::random_int(0, classes - 1));
  }
  const int64_t shape[3] = {n, steps, features};

  Handle h, as_image;
  ASSERT_EQ(graft_model_create_sequence(spec.c_str(), steps, features, classes, seed, GRAFT_DEVICE_CPU, &h.m), GRAFT_OK)
      << graft_model_last_error(h.m);
  const int64_t hwc[3] = {steps, features, 1};
  ASSERT_EQ(graft_model_create(spec.c_str(), hwc, classes, nullptr, seed, GRAFT_DEVICE_CPU, &as_image.m), GRAFT_OK)
      << graft_model_last_error(as_image.m);
  api::Model cpp(api::ModelSpec{.architecture = spec, .input = {steps, features}, .classes = classes, .seed = seed});
  api::TrainSettings s;
  s.batch = n;
  s.optimizer = {.kind = "adam", .lr = 1e-2f};
  cpp.configure(s);
  for (graft_model* m : {h.m, as_image.m})
    ASSERT_EQ(graft_model_configure(m, n, "adam", 1e-2f, 0, 0), GRAFT_OK) << graft_model_last_error(m);
  api::Batch b{.images = x.data(), .labels = labels.data(), .shape = {n, steps, features}};
  b.lengths = lengths.data();
  for (int step = 0; step < 3; ++step) {
    double from_c = -1, from_image = -2;
    ASSERT_EQ(graft_model_train_step_sequence(h.m, x.data(), labels.data(), shape, lengths.data(), GRAFT_MEMORY_HOST,
                                              nullptr, &from_c),
              GRAFT_OK)
        << graft_model_last_error(h.m);
    ASSERT_EQ(graft_model_train_step_sequence(as_image.m, x.data(), labels.data(), shape, lengths.data(),
                                              GRAFT_MEMORY_HOST, nullptr, &from_image),
              GRAFT_OK)
        << graft_model_last_error(as_image.m);
    const double expected = cpp.train_step(b).loss;
    EXPECT_EQ(from_c, expected) << spec;
    EXPECT_EQ(from_image, expected) << spec;
  }
  std::vector<float> from_c(size_t(n * classes)), from_cpp(from_c.size()), unmasked(from_c.size());
  ASSERT_EQ(graft_model_forward_sequence(h.m, x.data(), shape, lengths.data(), GRAFT_MEMORY_HOST, nullptr, from_c.data(),
                                         GRAFT_MEMORY_HOST),
            GRAFT_OK);
  cpp.forward(b, from_cpp.data());
  EXPECT_EQ(from_c, from_cpp) << spec;
  ASSERT_EQ(graft_model_forward_sequence(h.m, x.data(), shape, nullptr, GRAFT_MEMORY_HOST, nullptr, unmasked.data(),
                                         GRAFT_MEMORY_HOST),
            GRAFT_OK);
  EXPECT_NE(std::vector<float>(from_c.begin(), from_c.begin() + classes),
            std::vector<float>(unmasked.begin(), unmasked.begin() + classes))
      << spec << ": the lengths were not used (example 0 is one step short)";
  double accuracy = -1;
  ASSERT_EQ(graft_model_evaluate_sequence(h.m, x.data(), labels.data(), shape, lengths.data(), GRAFT_MEMORY_HOST, nullptr,
                                          nullptr, &accuracy),
            GRAFT_OK);
  EXPECT_EQ(accuracy, cpp.evaluate(b).accuracy);

  // Mistakes name the argument.
  std::vector<int32_t> too_long = lengths;
  too_long[0] = int32_t(steps + 1);
  EXPECT_EQ(graft_model_forward_sequence(h.m, x.data(), shape, too_long.data(), GRAFT_MEMORY_HOST, nullptr,
                                         from_c.data(), GRAFT_MEMORY_HOST),
            GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "Batch::lengths[0]")) << graft_model_last_error(h.m);
  EXPECT_EQ(graft_model_forward_sequence(h.m, x.data(), nullptr, nullptr, GRAFT_MEMORY_HOST, nullptr, from_c.data(),
                                         GRAFT_MEMORY_HOST),
            GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(h.m), "shape_nsf is null"));
  Handle bad;
  EXPECT_EQ(graft_model_create_sequence("lstm:6,dense:N", steps, features, classes, seed, GRAFT_DEVICE_CPU, &bad.m),
            GRAFT_ERROR);
  EXPECT_TRUE(testing::has(graft_model_last_error(bad.m), "comes before the pool")) << graft_model_last_error(bad.m);
}

TEST(CApi, TheHeaderCompilesAsC99) {
  const std::string header = std::string(GRAFT_SOURCE_DIR) + "/include/graft/graft.h";
  const std::string command = "cc -std=c99 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -x c '" + header + "' 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace
}  // namespace graft
