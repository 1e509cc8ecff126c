// Tensor: a shape and a typed pointer into memory owned elsewhere (the pool, the plan,
// a parameter buffer). HostTensor owns host memory, for data, checkpoints and tests.
// 4-D activations are NHWC on every backend.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace graft {

enum class Device { CPU, CUDA };
enum class DType { F32 };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

struct Shape {
  std::vector<int64_t> dims;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims(d) {}
  explicit Shape(std::vector<int64_t> d) : dims(std::move(d)) {}

  int rank() const { return static_cast<int>(dims.size()); }
  int64_t operator[](int i) const { return dims.at(static_cast<size_t>(i)); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  bool operator==(const Shape&) const = default;
  std::string str() const;  // "[64, 28, 28, 1]"
  Shape with_batch(int64_t n) const {  // the same shape with n as its first dimension
    Shape s = *this;
    s.dims.at(0) = n;
    return s;
  }
};

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
