// Communicator: what data-parallel training asks of the processes it runs in (rank, size,
// sums, a broadcast, a barrier). One process is the single-rank communicator here; several
// are MPI's (runtime/mpi/, built when MPI is found), with NCCL's for device gradients on top
// (runtime/nccl/, built with CUDA and NCCL). Every call is collective: each rank
// makes the same calls in the same order, `what` names the call in errors (a rank that
// died or hangs ends the others after the communicator's timeout, naming it).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace graft {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string describe() const = 0;  // "1 process", "MPI, 4 ranks"
  // Whether start_sum/wait_all take device memory (NCCL) rather than the host's.
  virtual bool gradients_on_device() const { return false; }

  // Sums `count` values in place over the ranks (host memory); every rank gets the sum.
  virtual void sum(float* data, size_t count, const char* what) = 0;
  virtual void sum(double* data, size_t count, const char* what) = 0;
  // The same sum started without waiting (gradient buckets overlap the rest of backward):
  // `data` must stay untouched until wait_all() returns. Sums finish in the order started.
  // Where gradients_on_device(), `data` is device memory and the sums run in stream order
  // (NCCL, runtime/nccl); else host memory.
  virtual void start_sum(float* data, size_t count, const char* what) = 0;
  virtual void wait_all(const char* what) = 0;
  // Rank `root`'s `bytes` at `data` to every rank.
  virtual void broadcast(void* data, size_t bytes, int root, const char* what) = 0;
  virtual void barrier(const char* what) = 0;
  // After an error on this rank only: ends the other ranks now (with `exit_code`) rather than
  // after their timeout. The single-process communicator has none to end.
  virtual void end_all(int exit_code) = 0;

  // The same answer on every rank: whether any rank said yes (an interrupt, a stop).
  bool any(bool mine, const char* what) {
    double v = mine ? 1.0 : 0.0;
    sum(&v, 1, what);
    return v > 0;
  }
  bool is_root() const { return rank() == 0; }
};

// The GPU (0-based, among the `visible` ones) that local rank `local_rank` on its node
// trains on: its own index when the process sees every GPU of the node; the one GPU when
// the launcher gave it exactly one (srun --gpus-per-task 1, CUDA_VISIBLE_DEVICES per rank).
// Fails, naming the rank and the count, when there is none or more local ranks than GPUs.
int device_for_local_rank(int local_rank, int visible, int world_rank);

// One process: sums and broadcasts leave the data as it is.
std::unique_ptr<Communicator> single_process_communicator();

}  // namespace graft
