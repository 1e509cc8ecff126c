// Shared by the tests run under mpirun: the world communicator, and one fresh seed per run
// (rank 0's, broadcast, printed) that every rank derives its inputs from.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>

#include "runtime/mpi/mpi_communicator.h"

namespace graft::testing {

inline Communicator& world() {
  static std::unique_ptr<Communicator> c = mpi_communicator(60);
  return *c;
}

inline uint64_t shared_seed() {
  static const uint64_t seed = [] {
    uint64_t s = std::random_device{}();
    world().broadcast(&s, sizeof s, 0, "seed");
    if (world().is_root()) std::printf("[graft] MPI test seed %llu\n", static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

}  // namespace graft::testing
