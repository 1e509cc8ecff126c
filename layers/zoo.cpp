// Architectures, torchvision's structure and names (see zoo.h for backbone and top).
//   fmnist_cnn: conv1 3x3x32 pad 1 -> relu1 -> pool1 2 -> conv2 3x3x64 pad 1 -> relu2 -> pool2 2
//               -> flatten -> fc1 128 -> relu3 -> fc2 N
//   vgg:        features.N exactly as torchvision's make_layers (conv i, relu i+1, max pool
//               one index), avgpool AdaptiveAvgPool2d(7, 7), flatten, classifier.0 Linear,
//               .1 ReLU, .2 Dropout(0.5), .3 Linear, .4 ReLU, .5 Dropout(0.5), .6 Linear
//   resnet:     conv1 7x7/2 (no bias), bn1, relu, maxpool 3x3/2 pad 1, layerL.B blocks,
//               avgpool (global), fc. Blocks: conv/bn pairs named as torchvision
//               (layer1.0.conv1, layer1.0.bn1, ...), downsample.0 (1x1 conv, stride) and
//               downsample.1 (bn) where shape changes; the parameter-free nodes are
//               layerL.B.relu1/.relu2 (inner), layerL.B.add and layerL.B.relu (after the add).
//               Bottleneck is v1.5: the stride sits on the 3x3 conv2.
// Initialisation as torchvision's constructors do it (models built without weights):
//   vgg:    convolutions kaiming_normal_(fan_out, relu) with zero bias; classifier
//           Linear layers N(0, 0.01) with zero bias;
//   resnet: convolutions kaiming_normal_(fan_out, relu); BatchNorm weight 1, bias 0;
//           fc keeps PyTorch's Linear default;
//   fmnist_cnn and grafted heads (--head): PyTorch's layer defaults, as a new nn.Linear.
#include "layers/zoo.h"

#include <map>

#include "layers/adaptive_pool.h"
#include "layers/add.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/head.h"
#include "layers/sequence_spec.h"
#include "layers/simple_layers.h"
#include "base/error.h"

namespace graft {

namespace {

struct Builder {
  const ModelSpec& spec;
  Model& m;

  int width(int w) const {
    if (w % spec.width_divisor != 0)
      fail("model ", spec.architecture, ": width divisor ", spec.width_divisor, " does not divide width ", w);
    return w / spec.width_divisor;
  }
  int in_channels() const { return static_cast<int>(spec.sample_shape[2]); }
  int64_t features() const { return m.infer_shapes(1).back().numel(); }
};

// torchvision's VGG and ResNet convolutions (see the top of this file).
std::unique_ptr<Conv2d> torchvision_conv(const std::string& name, int in_channels, Conv2dOptions o) {
  auto conv = std::make_unique<Conv2d>(name, in_channels, o);
  conv->use_kaiming_normal_fan_out();
  return conv;
}

// torchvision's VGG classifier layers.
std::unique_ptr<Dense> vgg_linear(const std::string& name, int in_features, int out_features) {
  auto dense = std::make_unique<Dense>(name, in_features, out_features);
  dense->use_normal_init(0.01f);
  return dense;
}

// --- fmnist_cnn ---

void fmnist_backbone(Builder& b) {
  const int c1 = b.width(32), c2 = b.width(64);
  b.m.add(std::make_unique<Conv2d>("conv1", b.in_channels(), Conv2dOptions{c1, 3, 1, 1, true}));
  b.m.add(std::make_unique<ReLU>("relu1"));
  b.m.add(std::make_unique<Pool2d>("pool1", PoolKind::Max, 2, 2, 0));
  b.m.add(std::make_unique<Conv2d>("conv2", c1, Conv2dOptions{c2, 3, 1, 1, true}));
  b.m.add(std::make_unique<ReLU>("relu2"));
  b.m.add(std::make_unique<Pool2d>("pool2", PoolKind::Max, 2, 2, 0));
}

void fmnist_top(Builder& b) {
  b.m.add(std::make_unique<Flatten>("flatten"));
  const int hidden = b.width(128);
  b.m.add(std::make_unique<Dense>("fc1", static_cast<int>(b.features()), hidden));
  b.m.add(std::make_unique<ReLU>("relu3"));
  b.m.add(std::make_unique<Dense>("fc2", hidden, b.spec.num_classes));
}

// --- VGG ---

constexpr int M = -1;  // max pool in a configuration
const std::map<std::string, std::vector<int>>& vgg_configs() {
  static const std::map<std::string, std::vector<int>> cfgs{
      {"vgg11", {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M}},
      {"vgg13", {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M}},
      {"vgg16", {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M}},
      {"vgg19", {64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M}},
  };
  return cfgs;
}

void vgg_backbone(Builder& b) {
  int index = 0, c = b.in_channels();
  auto name = [&] { return "features." + std::to_string(index++); };
  for (int v : vgg_configs().at(b.spec.architecture)) {
    if (v == M) {
      b.m.add(std::make_unique<Pool2d>(name(), PoolKind::Max, 2, 2, 0));
    } else {
      const int w = b.width(v);
      b.m.add(torchvision_conv(name(), c, Conv2dOptions{w, 3, 1, 1, true}));
      b.m.add(std::make_unique<ReLU>(name()));
      c = w;
    }
  }
}

void vgg_top(Builder& b) {
  if (b.spec.classifier_width < 1)
    fail("model ", b.spec.architecture, ": classifier width must be positive, got ", b.spec.classifier_width);
  const int hidden = b.width(b.spec.classifier_width);
  b.m.add(std::make_unique<AdaptiveAvgPool2d>("avgpool", 7, 7));
  b.m.add(std::make_unique<Flatten>("flatten"));
  b.m.add(vgg_linear("classifier.0", static_cast<int>(b.features()), hidden));
  b.m.add(std::make_unique<ReLU>("classifier.1"));
  b.m.add(std::make_unique<Dropout>("classifier.2", 0.5f));
  b.m.add(vgg_linear("classifier.3", hidden, hidden));
  b.m.add(std::make_unique<ReLU>("classifier.4"));
  b.m.add(std::make_unique<Dropout>("classifier.5", 0.5f));
  b.m.add(vgg_linear("classifier.6", hidden, b.spec.num_classes));
}

// --- ResNet ---

struct ResNetConfig {
  bool bottleneck;
  std::vector<int> blocks;
};
const std::map<std::string, ResNetConfig>& resnet_configs() {
  static const std::map<std::string, ResNetConfig> cfgs{
      {"resnet18", {false, {2, 2, 2, 2}}},
      {"resnet34", {false, {3, 4, 6, 3}}},
      {"resnet50", {true, {3, 4, 6, 3}}},
  };
  return cfgs;
}

int conv_bn(Builder& b, const std::string& conv, const std::string& bn, int input, int c_in, int c_out, int kernel,
            int stride) {
  b.m.add(torchvision_conv(conv, c_in, Conv2dOptions{c_out, kernel, stride, kernel / 2, false}), {input});
  return b.m.add(std::make_unique<BatchNorm2d>(bn, c_out));
}

// One residual block fed by node `input`; returns its last node.
int resnet_block(Builder& b, const std::string& p, int input, int inplanes, int planes, int stride, bool bottleneck) {
  const int expansion = bottleneck ? 4 : 1;
  int x;
  if (!bottleneck) {
    x = conv_bn(b, p + ".conv1", p + ".bn1", input, inplanes, planes, 3, stride);
    x = b.m.add(std::make_unique<ReLU>(p + ".relu1"));
    x = conv_bn(b, p + ".conv2", p + ".bn2", x, planes, planes, 3, 1);
  } else {
    x = conv_bn(b, p + ".conv1", p + ".bn1", input, inplanes, planes, 1, 1);
    x = b.m.add(std::make_unique<ReLU>(p + ".relu1"));
    x = conv_bn(b, p + ".conv2", p + ".bn2", x, planes, planes, 3, stride);
    x = b.m.add(std::make_unique<ReLU>(p + ".relu2"));
    x = conv_bn(b, p + ".conv3", p + ".bn3", x, planes, planes * expansion, 1, 1);
  }
  int shortcut = input;
  if (stride != 1 || inplanes != planes * expansion)
    shortcut = conv_bn(b, p + ".downsample.0", p + ".downsample.1", input, inplanes, planes * expansion, 1, stride);
  b.m.add(std::make_unique<Add>(p + ".add"), {x, shortcut});
  return b.m.add(std::make_unique<ReLU>(p + ".relu"));
}

void resnet_backbone(Builder& b) {
  const auto& cfg = resnet_configs().at(b.spec.architecture);
  const int stem = b.width(64);
  b.m.add(torchvision_conv("conv1", b.in_channels(), Conv2dOptions{stem, 7, 2, 3, false}));
  b.m.add(std::make_unique<BatchNorm2d>("bn1", stem));
  b.m.add(std::make_unique<ReLU>("relu"));
  int x = b.m.add(std::make_unique<Pool2d>("maxpool", PoolKind::Max, 3, 2, 1));
  int inplanes = stem;
  const int expansion = cfg.bottleneck ? 4 : 1;
  for (size_t l = 0; l < cfg.blocks.size(); ++l) {
    const int planes = b.width(64 << l);
    for (int k = 0; k < cfg.blocks[l]; ++k) {
      const int stride = (l > 0 && k == 0) ? 2 : 1;
      const std::string p = "layer" + std::to_string(l + 1) + "." + std::to_string(k);
      x = resnet_block(b, p, x, inplanes, planes, stride, cfg.bottleneck);
      inplanes = planes * expansion;
    }
  }
}

void resnet_top(Builder& b) {
  b.m.add(std::make_unique<GlobalAvgPool>("avgpool"));
  b.m.add(std::make_unique<Dense>("fc", static_cast<int>(b.features()), b.spec.num_classes));
}

struct Architecture {
  void (*backbone)(Builder&);
  void (*top)(Builder&);
  std::vector<std::string> backbone_globs;
};

const std::map<std::string, Architecture>& architectures() {
  static const std::map<std::string, Architecture> archs = [] {
    std::map<std::string, Architecture> a;
    a["fmnist_cnn"] = {fmnist_backbone, fmnist_top, {"conv*"}};
    for (const auto& [name, cfg] : vgg_configs()) a[name] = {vgg_backbone, vgg_top, {"features.*"}};
    for (const auto& [name, cfg] : resnet_configs()) a[name] = {resnet_backbone, resnet_top, {"conv1", "bn1", "layer*"}};
    return a;
  }();
  return archs;
}

[[noreturn]] void unknown(const std::string& name) {
  std::string names;
  for (const auto& n : known_architectures()) names += (names.empty() ? "" : ", ") + n;
  fail("--model '", name, "' is not a known architecture; known: ", names,
       ", or a sequence model spec such as 'lstm:128x2,last,dense:N' (layers/sequence_spec.h)");
}

}  // namespace

std::vector<std::string> known_architectures() {
  return {"fmnist_cnn", "vgg11", "vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50"};
}

std::vector<std::string> backbone_patterns(const std::string& architecture) {
  if (is_sequence_spec(architecture)) return sequence_backbone_patterns(architecture);
  auto it = architectures().find(architecture);
  if (it == architectures().end()) unknown(architecture);
  return it->second.backbone_globs;
}

std::unique_ptr<Model> build_model(const ModelSpec& spec, MemoryPool& pool) {
  if (is_sequence_spec(spec.architecture)) return build_sequence_model(spec, pool);
  auto it = architectures().find(spec.architecture);
  if (it == architectures().end()) unknown(spec.architecture);
  if (spec.num_classes < 1) fail("model ", spec.architecture, " needs at least one class, got ", spec.num_classes);
  if (spec.sample_shape.rank() != 3 || spec.sample_shape.numel() < 1)
    fail("model ", spec.architecture, " needs an [H, W, C] input, got ", spec.sample_shape.str());
  if (spec.width_divisor < 1)
    fail("model ", spec.architecture, ": width divisor must be at least 1, got ", spec.width_divisor);
  // Parse the head first: a typo fails before any layer is built.
  const auto head = spec.head.empty() ? std::vector<HeadLayerSpec>{} : parse_head(spec.head);
  auto m = std::make_unique<Model>(spec.architecture, spec.sample_shape, pool);
  Builder b{spec, *m};
  it->second.backbone(b);
  if (!head.empty())
    graft_head(*m, head, spec.num_classes);
  else if (spec.include_top)
    it->second.top(b);
  m->finalize(spec.seed);
  return m;
}

}  // namespace graft
