// Registers the CUDA backend (DevicePool, CudaOps / LibOps, pinned staging) with graft_core's
// registry (runtime/backend_registry.h). Call once at start-up, before any --device cuda work.
#pragma once

namespace graft {

void register_cuda_backend();

}  // namespace graft
