// NVTX ranges for profilers (Nsight Systems): a scoped range in the "graft" domain. The
// names graft uses are listed in docs/architecture.md ("Profiling with NVTX"). Built
// without the NVTX headers, a range does nothing.
#pragma once

namespace graft::trace {

// Whether this build emits NVTX ranges (the CUDA toolkit's NVTX headers were found).
bool available();

// A range from construction to destruction on the calling thread. `name` must outlive it:
// a literal, or a string built once (never one made per step).
class Range {
 public:
  explicit Range(const char* name);
  ~Range();
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;
};

}  // namespace graft::trace
