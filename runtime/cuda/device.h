// The CUDA device: is there one, and can this build run on it.
#pragma once
#include <string>

namespace graft::cuda {

// True when a CUDA device can be used. When false, `reason` (if given) says why, e.g.
// "CUDA driver version is insufficient for CUDA runtime version" or "no CUDA device found".
// Never throws.
bool device_available(std::string* reason = nullptr);

// The architectures this build embeds machine code for, e.g. "sm_90" (from nvcc's
// __CUDA_ARCH_LIST__).
std::string built_architectures();

// Throws graft::Error when the current device's compute capability has no kernel image in
// this build, naming both ("device NVIDIA A100 has compute capability 8.0, but this build
// has kernels for sm_90 only: rebuild with -DGRAFT_CUDA_ARCHITECTURES=80;90").
void check_device_supported();

// One line about the current device: name, compute capability, memory, SM count.
std::string device_summary();

}  // namespace graft::cuda
