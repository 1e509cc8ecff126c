// The model zoo: architectures by name, built from the layer types with PyTorch's names.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace graft {

struct ModelSpec {
  std::string architecture;  // "fmnist_cnn", ...
  Shape sample_shape;        // [H, W, C]
  int num_classes = 10;
  uint64_t seed = 0;         // parameter initialisation
};

// Throws graft::Error listing the known architectures when the name is unknown.
std::unique_ptr<Model> build_model(const ModelSpec& spec, MemoryPool& pool);
std::vector<std::string> known_architectures();

}  // namespace graft
