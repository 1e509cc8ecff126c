#include "runtime/cuda/device.h"

#include <cuda_runtime.h>

#include <string>

#include "base/cuda/cuda_check.h"
#include "base/error.h"

namespace graft::cuda {

namespace {

__global__ void probe_kernel(int* p) {
  if (p) *p = 1;
}

#define GRAFT_STR2(...) #__VA_ARGS__
#define GRAFT_STR(...) GRAFT_STR2(__VA_ARGS__)

}  // namespace

bool device_available(std::string* reason) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: the caller continues on the CPU
    if (reason) *reason = cudaGetErrorString(e);
    return false;
  }
  if (count == 0) {
    if (reason) *reason = "no CUDA device found";
    return false;
  }
  if (reason) reason->clear();
  return true;
}

std::string built_architectures() {
#if defined(__CUDA_ARCH_LIST__)
  // e.g. "900" or "800,860,900" -> "sm_80,sm_86,sm_90"
  const std::string list = GRAFT_STR(__CUDA_ARCH_LIST__);
  std::string out, item;
  auto flush = [&] {
    if (item.empty()) return;
    if (!out.empty()) out += ",";
    const int v = std::stoi(item);
    out += "sm_" + std::to_string(v / 10);
    item.clear();
  };
  for (char ch : list) {
    if (ch >= '0' && ch <= '9')
      item += ch;
    else
      flush();
  }
  flush();
  return out;
#else
  return "unknown";
#endif
}

void check_device_supported() {
  std::string reason;
  if (!device_available(&reason)) fail("no usable CUDA device: ", reason);
  int dev = 0;
  GRAFT_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  GRAFT_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  cudaFuncAttributes attr{};
  const cudaError_t e = cudaFuncGetAttributes(&attr, probe_kernel);
  if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction ||
      e == cudaErrorUnsupportedPtxVersion) {
    (void)cudaGetLastError();
    fail("device ", prop.name, " has compute capability ", prop.major, ".", prop.minor,
         ", but this build has kernels for ", built_architectures(),
         " only: rebuild with -DGRAFT_CUDA_ARCHITECTURES=", prop.major, prop.minor, " (", cudaGetErrorString(e),
         ")");
  }
  GRAFT_CUDA_CHECK(e);
}

std::string device_summary() {
  std::string reason;
  if (!device_available(&reason)) return "no CUDA device: " + reason;
  int dev = 0;
  GRAFT_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  GRAFT_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return detail::concat(prop.name, ", compute capability ", prop.major, ".", prop.minor, ", ",
                        prop.totalGlobalMem >> 20, " MiB, ", prop.multiProcessorCount, " SMs; build has ",
                        built_architectures());
}

}  // namespace graft::cuda
