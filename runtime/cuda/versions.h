// The CUDA library versions at run time and at build time (runtime/cuda/versions.cu).
#pragma once
#include <string>

namespace graft::cuda {

// "CUDA runtime 13.0, driver 13.0; cuDNN 9.13.0 (built with 9.19.0); cuBLASLt 13.1.0 (built
// with 13.1.0)". Never throws; works without a device.
std::string library_versions();

}  // namespace graft::cuda
