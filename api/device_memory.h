// Copies between the caller's device memory and the host, on the caller's stream: how a
// batch given as device pointers reaches the model (api/cuda/ with the CUDA backend,
// api/host_only/ without, where every call says the build has no CUDA).
#pragma once
#include <cstddef>
#include <string>

namespace graft::api_detail {

// True when this library was built with the CUDA backend.
bool built_with_cuda();
// Copies `bytes` from device memory `src` into host memory `dst` after the work queued on
// `stream` (a cudaStream_t; null: the legacy default stream), and waits for it. `what`
// names the argument in errors (a host pointer given as device memory is one).
void device_to_host(void* dst, const void* src, size_t bytes, void* stream, const std::string& what);
// Copies device memory `src` into the model's device memory `dst` after the work queued on
// `stream`, and waits for it: a batch already on the device is copied once, not through the host.
void device_to_device(void* dst, const void* src, size_t bytes, void* stream, const std::string& what);
// Copies host memory into device memory `dst`, ordered on `stream`, and waits for it.
void host_to_device(void* dst, const void* src, size_t bytes, void* stream, const std::string& what);

}  // namespace graft::api_detail
