// Device, DType and Shape: what every layer of graft, kernels included, names buffers by.
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

}  // namespace graft
