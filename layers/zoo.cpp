// Architectures. fmnist_cnn: the built-in transfer demo's network,
//   conv1 3x3x32 pad 1 -> relu -> pool 2 -> conv2 3x3x64 pad 1 -> relu -> pool 2
//   -> flatten -> fc1 128 -> relu -> fc2 N
#include "layers/zoo.h"

#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/simple_layers.h"
#include "runtime/error.h"

namespace graft {

namespace {

std::unique_ptr<Model> fmnist_cnn(const ModelSpec& s, MemoryPool& pool) {
  if (s.sample_shape.rank() != 3) fail("fmnist_cnn needs an [H, W, C] input, got ", s.sample_shape.str());
  const int c = static_cast<int>(s.sample_shape[2]);
  auto m = std::make_unique<Model>("fmnist_cnn", s.sample_shape, pool);
  m->add(std::make_unique<Conv2d>("conv1", c, Conv2dOptions{32, 3, 1, 1, true}));
  m->add(std::make_unique<ReLU>("relu1"));
  m->add(std::make_unique<Pool2d>("pool1", PoolKind::Max, 2, 2, 0));
  m->add(std::make_unique<Conv2d>("conv2", 32, Conv2dOptions{64, 3, 1, 1, true}));
  m->add(std::make_unique<ReLU>("relu2"));
  m->add(std::make_unique<Pool2d>("pool2", PoolKind::Max, 2, 2, 0));
  m->add(std::make_unique<Flatten>("flatten"));
  const int64_t h = s.sample_shape[0] / 4, w = s.sample_shape[1] / 4;
  m->add(std::make_unique<Dense>("fc1", static_cast<int>(h * w * 64), 128));
  m->add(std::make_unique<ReLU>("relu3"));
  m->add(std::make_unique<Dense>("fc2", 128, s.num_classes));
  return m;
}

}  // namespace

std::vector<std::string> known_architectures() { return {"fmnist_cnn"}; }

std::unique_ptr<Model> build_model(const ModelSpec& spec, MemoryPool& pool) {
  if (spec.num_classes < 1) fail("model ", spec.architecture, " needs at least one class, got ", spec.num_classes);
  std::unique_ptr<Model> m;
  if (spec.architecture == "fmnist_cnn") m = fmnist_cnn(spec, pool);
  if (!m) {
    std::string names;
    for (const auto& n : known_architectures()) names += (names.empty() ? "" : ", ") + n;
    fail("--model '", spec.architecture, "' is not a known architecture; known: ", names);
  }
  m->finalize(spec.seed);
  return m;
}

}  // namespace graft
