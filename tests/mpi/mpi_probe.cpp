// A small MPI program for tests/mpi_launch_test.cpp: what a rank that hangs, dies or fails
// does to the others. Every rank calls a barrier; first, rank 1
//   hang:   sleeps far longer than the timeout
//   die:    kills itself (SIGKILL)
//   error:  reports a graft::Error and ends every rank, as graft's main does
//   none:   nothing (the barrier completes, exit 0)
//   mpi_probe MODE TIMEOUT_SECONDS
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/error.h"
#include "runtime/mpi/mpi_communicator.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: mpi_probe hang|die|error|none TIMEOUT_SECONDS\n");
    return 2;
  }
  const std::string mode = argv[1];
  auto world = graft::mpi_communicator(std::atof(argv[2]));
  try {
    if (world->rank() == 1) {
      if (mode == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
      if (mode == "die") std::raise(SIGKILL);
      if (mode == "error") graft::fail("rank 1 found something wrong");
    }
    world->barrier("the probe's barrier");
  } catch (const graft::Error& e) {
    std::fprintf(stderr, "graft: error: rank %d: %s\n", world->rank(), e.what());
    world->end_all(1);
  }
  std::printf("rank %d passed the barrier\n", world->rank());
  return 0;
}
