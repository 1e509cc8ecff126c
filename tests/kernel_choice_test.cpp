// --kernels auto's mechanism on the CPU (ExecutorOptions::kernel_candidates): every
// convolution and dense layer is timed with each candidate and runs with the faster one,
// per layer; the choice changes no number, counts no backward call, and is reported. On a
// GPU the candidates are the native and library kernels (tests/gpu covers them).
#include <gtest/gtest.h>

#include "layers/zoo.h"
#include "runtime/executor.h"
#include "runtime/forwarding_ops.h"
#include "tests/testing.h"

namespace graft {
namespace {

// A clock only the pauses below move. Timed with real sleeps, a loaded 2-core machine
// lost more than a pause to scheduling now and then and the slower candidate won (seen
// once in six runs of the suite); with this clock the choice depends on the pauses alone,
// and the executor's marks must still bracket the calls it times.
struct PauseClock {
  double now_ms = 0;
  std::vector<double> marks;
};

// The CPU kernels, with a 5 ms pause on the clock in every convolution call or in every
// dense call.
class SlowOps final : public ForwardingOps {
 public:
  SlowOps(bool slow_conv, const char* name, PauseClock& clock)
      : ForwardingOps(cpu_ops()), slow_conv_(slow_conv), name_(name), clock_(clock) {}
  const char* name() const override { return name_; }
  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y,
                      float* ws) override {
    if (slow_conv_) pause();
    base_.conv2d_forward(g, x, w, b, y, ws);
  }
  void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx, float* ws) override {
    if (slow_conv_) pause();
    base_.conv2d_backward_data(g, dy, w, dx, ws);
  }
  void dense_forward(int n, int in, int out, const float* x, const float* w, const float* b, float* y) override {
    if (!slow_conv_) pause();
    base_.dense_forward(n, in, out, x, w, b, y);
  }
  void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                              float* db) override {
    if (!slow_conv_) pause();
    base_.dense_backward_weights(n, in, out, x, dy, dw, db);
  }
  int mark() override {
    clock_.marks.push_back(clock_.now_ms);
    return static_cast<int>(clock_.marks.size()) - 1;
  }
  double elapsed_ms(int a, int b) override { return clock_.marks.at(size_t(b)) - clock_.marks.at(size_t(a)); }
  void clear_marks() override { clock_.marks.clear(); }

 private:
  void pause() { clock_.now_ms += 5; }
  bool slow_conv_;
  const char* name_;
  PauseClock& clock_;
};

struct Result {
  std::vector<float> output, grads;
  std::vector<int64_t> backward_calls;
};

Result step(Model& m, ExecutorOptions eo, const std::vector<float>& x, const std::vector<int32_t>& y,
            std::vector<std::string>* chosen = nullptr, std::vector<std::string>* described = nullptr) {
  Executor ex(m, eo);
  if (chosen) *chosen = ex.chosen_kernels();
  if (described) *described = ex.describe();
  std::copy(x.begin(), x.end(), ex.input());
  std::copy(y.begin(), y.end(), ex.labels());
  ex.forward(eo.batch, true, 0);
  ex.backward(eo.batch);
  Result r;
  r.output.assign(ex.output(), ex.output() + ex.output_shape(eo.batch).numel());
  r.grads.assign(ex.gradients(), ex.gradients() + ex.trainable_count());
  r.backward_calls = ex.backward_calls();
  return r;
}

TEST(KernelChoice, EachLayerRunsWithTheCandidateThatTimedFaster) {
  HostPool pool;
  auto m = build_model(ModelSpec{.architecture = "fmnist_cnn", .sample_shape = Shape{8, 8, 1}, .num_classes = 3,
                                 .seed = testing::test_seed()},
                       pool);
  const int64_t batch = 4;
  const auto x = testing::random_floats(size_t(batch * 64), 0.0f, 1.0f);
  std::vector<int32_t> y;
  for (int64_t i = 0; i < batch; ++i) y.push_back(testing::random_int(0, 2));
  ExecutorOptions plain;
  plain.batch = batch;
  const Result reference = step(*m, plain, x, y);

  PauseClock clock;
  SlowOps slow_conv(true, "slow-conv", clock), slow_dense(false, "slow-dense", clock);
  ExecutorOptions tuned = plain;
  tuned.kernel_candidates = {&slow_conv, &slow_dense};
  std::vector<std::string> chosen, described;
  const Result r = step(*m, tuned, x, y, &chosen, &described);
  int convs = 0, denses = 0;
  for (int n = 0; n < m->num_nodes(); ++n) {
    const std::string kind = m->nodes()[size_t(n)].layer->kind();
    SCOPED_TRACE(m->nodes()[size_t(n)].name);
    if (kind == "conv2d") {
      EXPECT_EQ(chosen[size_t(n)], "slow-dense");
      EXPECT_NE(described[size_t(n)].find("(slow-dense kernels, timed fastest)"), std::string::npos)
          << described[size_t(n)];
      ++convs;
    } else if (kind == "dense") {
      EXPECT_EQ(chosen[size_t(n)], "slow-conv");
      ++denses;
    } else {
      EXPECT_EQ(chosen[size_t(n)], "");
    }
  }
  EXPECT_GT(convs, 0);
  EXPECT_GT(denses, 0);
  // Both candidates are the same CPU kernels underneath: the same numbers, bit for bit, and
  // the timing runs are not counted as backward passes.
  EXPECT_TRUE(r.output == reference.output);
  EXPECT_TRUE(r.grads == reference.grads);
  EXPECT_EQ(r.backward_calls, reference.backward_calls);
}

// A frozen, chunked base is timed on its chunk (no backward); the head on the full batch.
TEST(KernelChoice, FrozenChunksAreTimedOnTheirChunk) {
  HostPool pool;
  auto m = build_model(ModelSpec{.architecture = "vgg11", .sample_shape = Shape{32, 32, 3}, .num_classes = 4,
                                 .seed = testing::test_seed(), .head = "flatten,dense:8,relu,dense:N",
                                 .width_divisor = 8},
                       pool);
  const int64_t batch = 5;
  const auto x = testing::random_floats(size_t(batch * 32 * 32 * 3), 0.0f, 1.0f);
  std::vector<int32_t> y;
  for (int64_t i = 0; i < batch; ++i) y.push_back(testing::random_int(0, 3));
  ExecutorOptions plain;
  plain.batch = batch;
  plain.frozen = resolve_freeze_patterns(*m, {"features.*"});
  for (int n = 0; n < m->num_nodes(); ++n)
    if (m->nodes()[size_t(n)].name == "head.0") plain.chunk_through = n;
  plain.chunk = 2;
  const Result reference = step(*m, plain, x, y);
  PauseClock clock;
  SlowOps slow_conv(true, "slow-conv", clock), slow_dense(false, "slow-dense", clock);
  ExecutorOptions tuned = plain;
  tuned.kernel_candidates = {&slow_conv, &slow_dense};
  std::vector<std::string> chosen;
  const Result r = step(*m, tuned, x, y, &chosen);
  EXPECT_EQ(chosen[0], "slow-dense");  // features.0, a frozen convolution
  EXPECT_TRUE(r.output == reference.output);
  EXPECT_TRUE(r.grads == reference.grads);
}

}  // namespace
}  // namespace graft
