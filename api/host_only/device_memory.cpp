// Device memory without the CUDA backend: every use is the caller's mistake, said by name.
#include "api/device_memory.h"

#include "base/error.h"

namespace graft::api_detail {

namespace {
[[noreturn]] void no_cuda(const std::string& what) {
  fail(what, " is device memory, but this graft was built without CUDA (no toolkit found at build time); pass host "
       "memory (Memory::Host, GRAFT_MEMORY_HOST) or use a graft built with CUDA");
}
}  // namespace

bool built_with_cuda() { return false; }
void device_to_host(void*, const void*, size_t, void*, const std::string& what) { no_cuda(what); }
void host_to_device(void*, const void*, size_t, void*, const std::string& what) { no_cuda(what); }
void device_to_device(void*, const void*, size_t, void*, const std::string& what) { no_cuda(what); }

}  // namespace graft::api_detail
