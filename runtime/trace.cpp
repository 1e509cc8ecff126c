// NVTX ranges: the only file that includes the toolkit's NVTX header (GRAFT_HAVE_NVTX is
// defined for it alone by cmake/graft_nvtx.cmake).
#include "runtime/trace.h"

#if GRAFT_HAVE_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

namespace graft::trace {

#if GRAFT_HAVE_NVTX

namespace {

// One domain, so a profiler can show or filter graft's ranges apart from other libraries'.
// Without a tool attached, NVTX's functions are no-ops after their first call.
nvtxDomainHandle_t domain() {
  static const nvtxDomainHandle_t d = nvtxDomainCreateA("graft");
  return d;
}

}  // namespace

bool available() { return true; }

Range::Range(const char* name) {
  nvtxEventAttributes_t a{};
  a.version = NVTX_VERSION;
  a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  a.messageType = NVTX_MESSAGE_TYPE_ASCII;
  a.message.ascii = name;
  nvtxDomainRangePushEx(domain(), &a);
}

Range::~Range() { nvtxDomainRangePop(domain()); }

#else

bool available() { return false; }
Range::Range(const char*) {}
Range::~Range() {}

#endif

}  // namespace graft::trace
