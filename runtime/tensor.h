// Tensor: a shape and a typed pointer into memory owned elsewhere (the pool, the plan,
// a parameter buffer). HostTensor owns host memory, for data, checkpoints and tests.
// 4-D activations are NHWC on every backend.
#pragma once
#include <vector>

#include "base/shape.h"

namespace graft {

struct Tensor {
  float* data = nullptr;
  Shape shape;
  Device device = Device::CPU;
  DType dtype = DType::F32;

  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * sizeof(float); }
};

struct HostTensor {
  Shape shape;
  std::vector<float> values;

  HostTensor() = default;
  explicit HostTensor(Shape s) : shape(std::move(s)), values(static_cast<size_t>(shape.numel()), 0.0f) {}
  HostTensor(Shape s, std::vector<float> v) : shape(std::move(s)), values(std::move(v)) {}

  int64_t numel() const { return shape.numel(); }
  float* data() { return values.data(); }
  const float* data() const { return values.data(); }
  Tensor view() { return Tensor{values.data(), shape, Device::CPU, DType::F32}; }
};

}  // namespace graft
