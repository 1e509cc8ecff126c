// The NCCL communicator: data-parallel gradient sums on the device. The gradient buckets
// (start_sum/wait_all, device pointers) go through ncclAllReduce on a side stream that waits
// for the compute stream's work so far (the backward that filled the bucket), so the sums
// overlap the rest of backward; wait_all makes the compute stream (the optimizer) wait for
// the last one. Everything else (metrics, control values: sum, broadcast, barrier) stays on
// the host communicator it wraps (MPI, or the single process), which also carries NCCL's
// unique id from rank 0 to the others.
#pragma once
#include <memory>

#include "runtime/communicator.h"

namespace graft {

// This process's index among the ranks on its node, from the launcher's environment
// (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID, LOCAL_RANK); 0 without one.
int local_rank_from_environment();

// The GPUs this process sees; 0 when there are none or no driver.
int visible_gpus();

// Makes device_for_local_rank's GPU this process's device (one GPU per rank on each node).
void select_device_for_local_rank(int local_rank, int world_rank);

// Wraps `host` (which keeps the host-side calls) with an NCCL communicator over the same
// ranks, on the current device and the CUDA backend's compute stream. `timeout_seconds`
// (--dist-timeout; 0: none): how long a gradient sum may wait for the other ranks before the
// NCCL communicator is aborted and the step fails, naming the call and the rank.
std::unique_ptr<Communicator> nccl_communicator(std::unique_ptr<Communicator> host, double timeout_seconds);

}  // namespace graft
