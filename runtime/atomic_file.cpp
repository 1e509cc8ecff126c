// Atomic file writes: temporary file beside the target, write, flush, fsync, rename, fsync dir.
#include "runtime/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/error.h"

namespace graft {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// A name unique within this process and across processes: "<path>.tmp.<pid>.<counter>".
std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(static_cast<long long>(::getpid())) + "." +
         std::to_string(counter.fetch_add(1));
}

std::string parent_dir_of(const std::string& path) {
  std::filesystem::path p(path);
  std::filesystem::path parent = p.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Removes the temp file (if any) and closes the descriptor (if open) on scope exit unless
// released: every failure path leaves nothing behind.
struct TempGuard {
  std::string name;
  int fd = -1;
  bool armed = true;
  ~TempGuard() {
    if (fd >= 0) ::close(fd);
    if (armed) ::unlink(name.c_str());
  }
};

}  // namespace

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& chunks) {
  if (path.empty()) fail("cannot write a file with an empty path");
  const std::string tmp = temp_name_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    fail("cannot write ", path, ": cannot create temporary file ", tmp, ": ", errno_text(err));
  }
  TempGuard guard{tmp, fd};

  for (std::string_view chunk : chunks) {
    const char* p = chunk.data();
    size_t left = chunk.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        fail("cannot write ", path, ": writing ", tmp, " failed: ", errno_text(err));
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    fail("cannot write ", path, ": fsync of ", tmp, " failed: ", errno_text(err));
  }
  guard.fd = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    fail("cannot write ", path, ": closing ", tmp, " failed: ", errno_text(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    fail("cannot write ", path, ": renaming ", tmp, " over it failed: ", errno_text(err));
  }
  guard.armed = false;  // the temp name no longer exists; the new file is in place

  // Make the rename itself durable. A failure here does not undo the write, but is reported:
  // the file is in place and readable, only its survival of a power cut is unknown.
  const std::string dir = parent_dir_of(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    // Some file systems refuse fsync on a directory (EINVAL); that is not a write failure.
    if (rc != 0 && err != EINVAL && err != EROFS)
      fail("wrote ", path, " but fsync of its directory ", dir, " failed: ", errno_text(err));
  }
}

}  // namespace graft
