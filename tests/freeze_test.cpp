// Layer patterns (select_nodes): ranges FROM..TO by node name or index, ends included and
// optional, against the node order, for --freeze (the same set as the globs they replace in
// the stage-2 recipe) and for every other flag that names layers (--init-only, --lr-mult,
// --bn); errors name the flag, the pattern and the end at fault.
#include <algorithm>
#include <string>
#include <vector>

#include "layers/batchnorm.h"
#include "layers/zoo.h"
#include "runtime/checkpoint.h"
#include "runtime/executor.h"
#include "runtime/model.h"
#include "runtime/trainer.h"
#include "tests/testing.h"

namespace graft {
namespace {

using testing::error_of;
using testing::has;

std::unique_ptr<Model> vgg16(HostPool& pool) {
  return build_model(ModelSpec{.architecture = "vgg16", .sample_shape = Shape{32, 32, 3}, .num_classes = 3,
                               .seed = testing::test_seed(), .head = "flatten,dense:8,relu,dense:N",
                               .width_divisor = 16},
                     pool);
}

TEST(Freeze, RandomRangesByNameAndByIndexFreezeExactlyTheLayersBetween) {
  HostPool pool;
  auto m = vgg16(pool);
  const int N = m->num_nodes();
  for (int trial = 0; trial < 50; ++trial) {
    int a = testing::random_int(0, N - 1), b = testing::random_int(0, N - 1);
    if (a > b) std::swap(a, b);
    bool any = false;
    for (int n = a; n <= b; ++n) any = any || m->node_param_count(n) > 0;
    if (!any) continue;  // a range of relus and pools only: the error test below
    const std::string by_name = m->nodes()[a].name + ".." + m->nodes()[b].name;
    const std::string by_index = std::to_string(a) + ".." + std::to_string(b);
    const auto named = resolve_freeze_patterns(*m, {by_name});
    EXPECT_EQ(resolve_freeze_patterns(*m, {by_index}), named) << by_index << " vs " << by_name;
    for (int n = 0; n < N; ++n)
      EXPECT_EQ(named[size_t(n)], n >= a && n <= b && m->node_param_count(n) > 0)
          << by_name << ": node " << m->nodes()[n].name;
  }
  // Open ends: the first node, the last node.
  const auto to_end = resolve_freeze_patterns(*m, {"features.24.."});
  EXPECT_TRUE(to_end[size_t(m->find_node("head.3"))]);
  EXPECT_FALSE(to_end[size_t(m->find_node("features.21"))]);
  const auto everything = resolve_freeze_patterns(*m, {".."});
  for (int n = 0; n < N; ++n) EXPECT_EQ(everything[size_t(n)], m->node_param_count(n) > 0) << m->nodes()[n].name;
}

TEST(Freeze, UpToTheFourthBlockIsTheStageTwoRecipesGlobs) {
  HostPool pool;
  auto m = vgg16(pool);
  const auto globs = resolve_freeze_patterns(*m, {"features.[0-9]", "features.1[0-9]", "features.2[0-3]"});
  EXPECT_EQ(resolve_freeze_patterns(*m, {"..features.23"}), globs);
  EXPECT_EQ(resolve_freeze_patterns(*m, {"..23"}), globs);  // VGG's node index is torchvision's
  EXPECT_FALSE(globs[size_t(m->find_node("features.24"))]);
}

TEST(Freeze, RangeErrorsNameThePatternAndTheEnd) {
  HostPool pool;
  auto m = vgg16(pool);
  std::string e = error_of([&] { resolve_freeze_patterns(*m, {"..featres.3"}); });
  EXPECT_TRUE(has(e, "--freeze '..featres.3'") && has(e, "no layer named 'featres.3'") && has(e, "features.0"))
      << e;
  e = error_of([&] { resolve_freeze_patterns(*m, {"features.30..features.5"}); });
  EXPECT_TRUE(has(e, "'features.30' comes after 'features.5'")) << e;
  e = error_of([&] { resolve_freeze_patterns(*m, {"3.." + std::to_string(m->num_nodes())}); });
  EXPECT_TRUE(has(e, "has nodes 0 to " + std::to_string(m->num_nodes() - 1))) << e;
  e = error_of([&] { resolve_freeze_patterns(*m, {"features.3..features.4"}); });  // a relu and a pool
  EXPECT_TRUE(has(e, "--freeze 'features.3..features.4' matches no layer with parameters")) << e;
}

TEST(LayerPatterns, InitOnlyLrMultAndBnTakeRangesToo) {
  HostPool pool;
  testing::TempDir dir;
  // --init-only: a range loads those layers and leaves the rest as they started.
  auto source = vgg16(pool);
  auto target = build_model(ModelSpec{.architecture = "vgg16", .sample_shape = Shape{32, 32, 3}, .num_classes = 3,
                                      .seed = testing::test_seed() + 1, .head = "flatten,dense:8,relu,dense:N",
                                      .width_divisor = 16},
                            pool);
  std::vector<std::vector<float>> before;
  for (size_t p = 0; p < target->params().size(); ++p)
    before.emplace_back(target->param_data(p), target->param_data(p) + target->params()[p].spec.shape.numel());
  save_checkpoint(dir.file("source.safetensors"), *source, nullptr, {}, CheckpointInfo{});
  const auto file = read_safetensors(dir.file("source.safetensors"));
  load_parameters(*target, file, dir.file("source.safetensors"), LoadOptions{.only = {"features.5..features.12"}});
  for (size_t p = 0; p < target->params().size(); ++p) {
    const int node = target->params()[p].node;
    const bool in = node >= target->find_node("features.5") && node <= target->find_node("features.12");
    const float* want = in ? source->param_data(p) : before[p].data();
    EXPECT_TRUE(std::equal(want, want + before[p].size(), target->param_data(p))) << target->params()[p].name;
  }

  // --lr-mult: a range, then a parameter's name, on the trainable segments.
  ExecutorOptions eo;
  eo.batch = 2;
  Executor ex(*target, eo);
  auto segments = ex.trainable_segments();
  apply_lr_mult(*target, {{"features.24..features.28", 0.1f}, {"head.3.bias", 0.5f}}, segments);
  for (const auto& seg : segments) {
    const int node = target->find_node(seg.name.substr(0, seg.name.rfind('.')));
    const float want = seg.name == "head.3.bias" ? 0.5f
                       : node >= target->find_node("features.24") && node <= target->find_node("features.28")
                           ? 0.1f
                           : 1.0f;
    EXPECT_EQ(seg.lr_scale, want) << seg.name;
  }
  EXPECT_TRUE(has(error_of([&] { apply_lr_mult(*target, {{"..nothing", 0.1f}}, segments); }),
                  "--lr-mult '..nothing': vgg16 has no layer named 'nothing'"));

  // --bn: a range of a ResNet's block sets the policy of the batch norms in it only.
  auto resnet = build_model(ModelSpec{.architecture = "resnet18", .sample_shape = Shape{32, 32, 3}, .num_classes = 3,
                                      .seed = testing::test_seed(), .width_divisor = 16},
                            pool);
  apply_batchnorm_policy(*resnet, {}, {{"layer1.0.conv1..layer1.0.bn2", BnPolicy::FrozenStats}});
  int frozen_stats = 0;
  for (const auto& node : resnet->nodes())
    if (const auto* bn = dynamic_cast<const BatchNorm2d*>(node.layer.get())) {
      const bool in = node.name == "layer1.0.bn1" || node.name == "layer1.0.bn2";
      EXPECT_EQ(bn->policy(), in ? BnPolicy::FrozenStats : BnPolicy::Train) << node.name;
      frozen_stats += in;
    }
  EXPECT_EQ(frozen_stats, 2);
}

}  // namespace
}  // namespace graft
