// Signal handling for graceful stops. The handler only stores to an atomic and, on a
// second SIGINT, calls _exit: both async-signal-safe.
#include "runtime/interrupt.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace graft {

namespace {
std::atomic<int> requested{0};

void on_signal(int sig) {
  if (requested.load() != 0 && sig == SIGINT) {
    const char msg[] = "\ngraft: second interrupt, exiting now (checkpoints already written are intact)\n";
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(130);
  }
  requested.store(sig);
}
}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int interrupt_requested() { return requested.load(); }
void clear_interrupt() { requested.store(0); }
int Interrupted::exit_code() const { return 128 + signal; }

}  // namespace graft
