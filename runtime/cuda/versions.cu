// The versions of the CUDA libraries graft runs with, beside those it was built against:
// `graft --version` prints them, and the GPU runs record them (docs/gpu-runs.md). On a
// machine whose pip wheels carry an older cuDNN or cuBLAS than our headers, this is the line
// that says so.
#include "runtime/cuda/versions.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>

namespace graft::cuda {

namespace {

// cuDNN 9 and cuBLAS number versions major*10000 + minor*100 + patch; CUDA major*1000 + minor*10.
std::string dotted(size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}
std::string cuda_dotted(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

}  // namespace

std::string library_versions() {
  int runtime = 0, driver = 0;
  (void)cudaRuntimeGetVersion(&runtime);
  const cudaError_t e = cudaDriverGetVersion(&driver);
  (void)cudaGetLastError();  // no driver is an answer here, not an error
  std::string s = "CUDA runtime " + cuda_dotted(runtime) + ", driver " +
                  (e == cudaSuccess && driver > 0 ? cuda_dotted(driver) : std::string("none"));
  s += "; cuDNN " + dotted(cudnnGetVersion()) + " (built with " + dotted(CUDNN_VERSION) + ")";
  s += "; cuBLASLt " + dotted(cublasLtGetVersion()) + " (built with " + dotted(CUBLAS_VERSION) + ")";
  if (cudnnGetVersion() < CUDNN_VERSION) s += "; note: cuDNN is older than the headers graft was built with";
  return s;
}

}  // namespace graft::cuda
