// The MPI communicator: ranks of MPI_COMM_WORLD (mpirun, srun). Collectives are started
// non-blocking and waited on against a deadline, so a rank that died or hangs ends every
// rank with an error naming the call and the timeout, through MPI_Abort, instead of a
// silent hang.
#pragma once
#include <memory>

#include "runtime/communicator.h"

namespace graft {

// Whether this process was started by an MPI launcher (mpirun/mpiexec of Open MPI or
// MPICH, srun with PMI): the environment they set.
bool launched_by_mpi();

// Initializes MPI (once per process; finalized when the last communicator goes) and returns
// MPI_COMM_WORLD's view. `timeout_seconds`: how long one collective may wait for the others.
std::unique_ptr<Communicator> mpi_communicator(double timeout_seconds);

}  // namespace graft
