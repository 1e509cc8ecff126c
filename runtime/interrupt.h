// Interrupts: the first SIGINT or SIGTERM asks the training loop to stop after the current
// step (it then writes a resumable checkpoint and exits 130 or 143); a second SIGINT
// exits at once. Atomic checkpoint writes mean even that leaves no torn file.
#pragma once

namespace graft {

void install_interrupt_handlers();
// 0 when no stop was requested, else the signal number (SIGINT or SIGTERM).
int interrupt_requested();
void clear_interrupt();  // tests
// Raised by the trainer once it has saved its state after an interrupt.
struct Interrupted {
  int signal = 0;
  int exit_code() const;  // 128 + signal: 130 for SIGINT, 143 for SIGTERM
};

}  // namespace graft
