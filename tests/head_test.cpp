// Head grafting: the spec parser (values and errors naming token and position), heads on
// each backbone with PyTorch Sequential names, structural errors, and the reference recipe
// in miniature (frozen VGG features, a new head, training through the Executor).
#include <algorithm>
#include <functional>

#include "layers/batchnorm.h"
#include "layers/head.h"
#include "layers/zoo.h"
#include "base/error.h"
#include "runtime/executor.h"
#include "runtime/optimizer.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::error_of;

TEST(Head, ParsesTheReferenceHead) {
  const auto h = parse_head("flatten, dense:1024,relu,dropout:0.5,dense:N");
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[0].op, HeadOp::Flatten);
  EXPECT_EQ(h[1].op, HeadOp::Dense);
  EXPECT_EQ(h[1].units, 1024);
  EXPECT_FALSE(h[1].units_are_classes);
  EXPECT_EQ(h[2].op, HeadOp::ReLU);
  EXPECT_EQ(h[3].op, HeadOp::Dropout);
  EXPECT_FLOAT_EQ(h[3].rate, 0.5f);
  EXPECT_EQ(h[4].op, HeadOp::Dense);
  EXPECT_TRUE(h[4].units_are_classes);
  EXPECT_EQ(h[4].position, 5);
  const auto g = parse_head("gap,bn,dense:7");
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].op, HeadOp::GlobalAvgPool);
  EXPECT_EQ(g[1].op, HeadOp::BatchNorm);
  EXPECT_EQ(g[2].units, 7);
}

TEST(Head, ParseErrorsNameTheTokenAndItsPosition) {
  struct Case {
    const char* spec;
    const char* expect;
  };
  for (Case c : {Case{"flatten,dense:x", "token 2 'dense:x'"}, Case{"flatten,,dense:N", "token 2 ''"},
                 Case{"gap,dense:N,softmax", "token 3 'softmax'"}, Case{"gap,dense", "token 2 'dense'"},
                 Case{"gap,dense:0", "token 2 'dense:0'"}, Case{"gap,dense:12abc", "token 2 'dense:12abc'"},
                 Case{"flatten,dropout:1.5,dense:N", "token 2 'dropout:1.5'"},
                 Case{"flatten,dropout:,dense:N", "token 2 'dropout:'"}, Case{"relu:2", "token 1 'relu:2'"},
                 Case{"gap,dense:N,", "token 3 ''"}, Case{"  ", "empty"}}) {
    const std::string msg = error_of([&] { parse_head(c.spec); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.spec << ": " << msg;
  }
}

std::vector<std::string> param_names(const Model& m) {
  std::vector<std::string> names;
  for (const auto& p : m.params()) names.push_back(p.name);
  return names;
}

TEST(Head, ReplacesTheVggTopWithSequentialNames) {
  HostPool pool;
  ModelSpec s{"vgg16", Shape{64, 64, 3}, 6, 1};
  s.width_divisor = 16;
  s.head = "flatten,dense:24,relu,dropout:0.5,dense:N";
  s.include_top = false;  // Keras' spelling; the head is grafted either way
  auto m = build_model(s, pool);
  const auto names = param_names(*m);
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](auto& n) { return n.starts_with("classifier"); }), 0);
  EXPECT_EQ(m->find_node("avgpool"), -1);
  const int flatten = m->find_node("head.0");
  ASSERT_GE(flatten, 0);
  EXPECT_EQ(m->nodes()[flatten].inputs, (std::vector<int>{m->find_node("features.30")}));
  const auto shapes = m->infer_shapes(3);
  EXPECT_EQ(shapes[m->find_node("head.1")], (Shape{3, 24}));
  EXPECT_EQ(shapes.back(), (Shape{3, 6}));
  const int w1 = m->find_node("head.1");
  EXPECT_EQ(m->params()[m->node_params(w1)[0]].name, "head.1.weight");
  EXPECT_EQ(m->params()[m->node_params(w1)[0]].spec.checkpoint_shape, (Shape{24, 2 * 2 * 32}));
  EXPECT_EQ(m->params()[m->node_params(m->find_node("head.4"))[1]].name, "head.4.bias");
  EXPECT_EQ(m->nodes()[m->find_node("head.3")].layer->kind(), "dropout");
  // include_top=true with a head: the same model.
  s.include_top = true;
  EXPECT_EQ(param_names(*build_model(s, pool)), names);
}

TEST(Head, GapHeadOnResNetAndBatchNormInAHead) {
  HostPool pool;
  ModelSpec s{"resnet50", Shape{32, 32, 3}, 5, 1};
  s.width_divisor = 16;
  s.head = "gap,dense:16,bn,relu,dense:N";
  auto m = build_model(s, pool);
  EXPECT_EQ(m->find_node("fc"), -1);
  EXPECT_EQ(m->nodes()[m->find_node("head.0")].inputs, (std::vector<int>{m->find_node("layer4.2.relu")}));
  const auto names = param_names(*m);
  for (const char* n : {"head.1.weight", "head.2.weight", "head.2.running_var", "head.2.num_batches_tracked",
                        "head.4.weight"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  EXPECT_EQ(m->params()[m->node_params(m->find_node("head.1"))[0]].spec.shape, (Shape{16, 128}));
  EXPECT_EQ(m->infer_shapes(2).back(), (Shape{2, 5}));
}

TEST(Head, StructuralErrorsNameTheToken) {
  HostPool pool;
  auto build = [&](const std::string& arch, const std::string& head) {
    return error_of([&] {
      ModelSpec s{arch, Shape{32, 32, 3}, 4, 1};
      s.width_divisor = 16;
      s.head = head;
      build_model(s, pool);
    });
  };
  std::string msg = build("vgg11", "dense:N");
  EXPECT_NE(msg.find("token 1 'dense:N'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("flatten or gap"), std::string::npos) << msg;
  msg = build("resnet18", "gap,gap,dense:N");
  EXPECT_NE(msg.find("token 2 'gap'"), std::string::npos) << msg;
  msg = build("resnet18", "relu");
  EXPECT_NE(msg.find("ends with"), std::string::npos) << msg;
  msg = build("resnet18", "gap,dense:N,dense:x");  // syntax errors come before any layer is built
  EXPECT_NE(msg.find("token 3 'dense:x'"), std::string::npos) << msg;
}

// The reference recipe in miniature: VGG features frozen, a flatten-dense-relu-dense head
// trained with Adam. The backbone runs no backward and keeps its weights bitwise.
TEST(Head, TrainsOnAFrozenVggBackbone) {
  HostPool pool;
  ModelSpec s{"vgg11", Shape{32, 32, 3}, 3, testing::test_seed()};
  s.width_divisor = 16;
  s.head = "flatten,dense:32,relu,dense:N";
  auto m = build_model(s, pool);
  // Stand-in for pretrained features: PyTorch's default init shrinks the signal through
  // eight convolutions until biases dominate; He-scaled weights and zero biases keep the
  // features informative.
  for (size_t p = 0; p < m->params().size(); ++p) {
    const auto& info = m->params()[p];
    if (!info.name.starts_with("features.")) continue;
    float* v = m->param_data(p);
    for (int64_t i = 0; i < info.spec.shape.numel(); ++i) v[i] = info.name.ends_with("bias") ? 0.0f : v[i] * 2.45f;
  }
  ExecutorOptions o;
  o.batch = 6;
  o.frozen = resolve_freeze_patterns(*m, backbone_patterns("vgg11"));
  Executor ex(*m, o);
  Optimizer opt(OptimizerConfig{}, ex.trainable_count(), pool);
  // Class c: channel c bright, plus noise.
  const auto noise = testing::random_floats(size_t(6 * 32 * 32 * 3), 0.0f, 0.2f);
  for (size_t i = 0; i < noise.size(); ++i) ex.input()[i] = noise[i] + (i % 3 == (i / (32 * 32 * 3)) % 3 ? 1.0f : 0.0f);
  for (int i = 0; i < 6; ++i) ex.labels()[i] = i % 3;
  const std::vector<float> before(m->param_data(0), m->param_data(0) + m->total_param_count());
  std::vector<double> losses;
  // 60 steps: at 30, about one random initialisation in twenty had not yet reached 0.6x.
  for (int step = 0; step < 60; ++step) {
    ex.forward(6, true, step);
    ex.backward(6);
    losses.push_back(ex.last_batch_loss());
    opt.step(ex.trainable_segments(), 1e-2f);
  }
  EXPECT_LT(losses.back(), 0.6 * losses.front()) << losses.front() << " -> " << losses.back();
  for (size_t p = 0; p < m->params().size(); ++p) {
    const auto& info = m->params()[p];
    const bool same = std::equal(m->param_data(p), m->param_data(p) + info.spec.shape.numel(), before.data() + info.offset);
    EXPECT_EQ(same, info.name.starts_with("features.")) << info.name;
  }
  for (int n = 0; n < m->num_nodes(); ++n)
    EXPECT_EQ(ex.backward_calls()[n] > 0, m->nodes()[n].name.starts_with("head.") && m->nodes()[n].name != "head.0")
        << m->nodes()[n].name;
}

}  // namespace
}  // namespace graft
