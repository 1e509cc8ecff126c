// Errors graft reports to users and callers. Every failure is a graft::Error whose message
// names the thing (path, tensor, layer, flag) and what to do about it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace graft {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

// Throws graft::Error with the streamed message: fail("tensor ", name, " has shape ", s).
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace graft

// Internal invariant: a broken one is a bug in graft, reported with file and line.
#define GRAFT_ASSERT(cond, ...)                                                          \
  do {                                                                                   \
    if (!(cond))                                                                         \
      ::graft::fail("internal error at ", __FILE__, ":", __LINE__, ": ", #cond, " " __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)
