// The model zoo: architectures by name, built from the layer types with PyTorch's names.
//
//   fmnist_cnn            the built-in transfer demo's small CNN
//   vgg11 vgg13 vgg16 vgg19       torchvision's VGG (configurations A, B, D, E, no BN)
//   resnet18 resnet34 resnet50    torchvision's ResNet (BasicBlock / Bottleneck v1.5)
//   lstm:128x2,last,dense:N ...   sequence models by spec (grammar: layers/sequence_spec.h)
//
// Every parameter and buffer is named as in torchvision's state_dict, with its shape, so a
// torchvision checkpoint saved as safetensors loads directly (load_parameters).
//
// Backbone and top. An architecture is a backbone followed by its own top:
//   vgg*        backbone: features.* (the convolutions, up to and including the last max
//               pool, output [N, H/32, W/32, 512]); top: avgpool (adaptive 7x7), flatten,
//               classifier.0 ... classifier.6
//   resnet*     backbone: conv1, bn1, relu, maxpool, layer1 ... layer4 (output
//               [N, H/32, W/32, 512 or 2048]); top: avgpool (global), fc
//   fmnist_cnn  backbone: conv1 ... pool2; top: flatten, fc1, relu3, fc2
//   sequences   backbone: embedding, lstm/gru ..., pool; top: what follows the pool
// ModelSpec::head (non-empty) replaces the top with a grafted head (layers/head.h) named
// head.0, head.1, ... . include_top=false with no head gives the backbone alone: its
// output is a feature map, for feature extraction (training needs logits, so a head).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace graft {

struct ModelSpec {
  std::string architecture;  // "fmnist_cnn", "vgg16", "resnet50", ...
  Shape sample_shape;        // [H, W, C]
  int num_classes = 10;
  uint64_t seed = 0;         // parameter initialisation
  std::string head;          // "" = the architecture's own top; else a head spec (layers/head.h)
  bool include_top = true;   // false and no head: the backbone alone
  // Divides every convolution and hidden width (small test models with torchvision's
  // structure and names); 1 = torchvision's exact sizes. Must divide every width.
  int width_divisor = 1;
  // VGG's classifier hidden width before width_divisor (torchvision: 4096).
  int classifier_width = 4096;
};

// Throws graft::Error listing the known architectures when the name is unknown, and
// naming the layer when the input is too small for the architecture.
std::unique_ptr<Model> build_model(const ModelSpec& spec, MemoryPool& pool);
std::vector<std::string> known_architectures();

// Node-name globs (for resolve_freeze_patterns) that select the architecture's backbone
// as described above: vgg* {"features.*"}, resnet* {"conv1", "bn1", "layer*"},
// fmnist_cnn {"conv*"}, a sequence spec its embedding and recurrent layers ({"lstm"}).
std::vector<std::string> backbone_patterns(const std::string& architecture);

}  // namespace graft
