// Atomic file writes: the bytes go to a temporary file beside the target, which is flushed,
// fsync'ed and renamed over the target, then the directory is fsync'ed. A crash at any
// point leaves either the old file or the new one, never a torn one.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace graft {

// Writes the concatenation of `chunks` to `path` atomically. Throws graft::Error naming the
// path and the system error (no space, no permission, missing folder, ...).
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& chunks);

}  // namespace graft
