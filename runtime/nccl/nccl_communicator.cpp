// NCCL behind the Communicator interface: device gradient sums on a side stream, ordered with
// the compute stream by events, polled against a deadline; host calls go to the wrapped one.
// The communicator is nonblocking, so that set-up and the first sums (when NCCL connects the
// ranks) are polled against the same deadline: a rank that never arrives cannot hang the rest.
#include "runtime/nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/cuda/cuda_check.h"
#include "base/error.h"
#include "kernels/cuda/ops_cuda.h"

namespace graft {
namespace {

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> host, double timeout_seconds)
      : host_(std::move(host)), timeout_(timeout_seconds) {
    ncclUniqueId id{};
    if (host_->is_root()) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_->broadcast(&id, sizeof id, 0, "the NCCL unique id");
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    try {  // a throwing constructor runs no destructor: abort what was made, then rethrow
      check(ncclCommInitRankConfig(&comm_, host_->size(), id, host_->rank(), &config), "ncclCommInitRankConfig");
      settle("setting up the NCCL communicator");
      compute_ = cuda::compute_stream();
      GRAFT_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
      GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
      GRAFT_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    } catch (...) {
      if (comm_) (void)ncclCommAbort(comm_);
      comm_ = nullptr;
      destroy_stream_and_events();
      throw;
    }
  }

  ~NcclCommunicator() override {
    if (comm_) finish_or_abort();
    destroy_stream_and_events();
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string describe() const override { return "NCCL, " + host_->describe(); }
  bool gradients_on_device() const override { return true; }

  void sum(float* data, size_t count, const char* what) override { host_->sum(data, count, what); }
  void sum(double* data, size_t count, const char* what) override { host_->sum(data, count, what); }
  void broadcast(void* data, size_t bytes, int root, const char* what) override {
    host_->broadcast(data, bytes, root, what);
  }
  void barrier(const char* what) override { host_->barrier(what); }
  void end_all(int exit_code) override {
    if (comm_) (void)ncclCommAbort(comm_);
    comm_ = nullptr;
    host_->end_all(exit_code);
  }

  // `data` is device memory: the bucket the compute stream's work so far has filled.
  void start_sum(float* data, size_t count, const char* what) override {
    GRAFT_CUDA_CHECK(cudaEventRecord(ready_, compute_));
    GRAFT_CUDA_CHECK(cudaStreamWaitEvent(side_, ready_, 0));
    check(ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm_, side_), what);
    pending_ = true;
    settle(what);
  }

  void wait_all(const char* what) override {
    if (!pending_) return;
    pending_ = false;
    GRAFT_CUDA_CHECK(cudaEventRecord(done_, side_));
    GRAFT_CUDA_CHECK(cudaStreamWaitEvent(compute_, done_, 0));  // the optimizer after the sums
    // A rank that died leaves the others' NCCL kernels spinning: poll instead of blocking.
    poll(what, [this] {
      const cudaError_t e = cudaEventQuery(done_);
      if (e != cudaErrorNotReady) GRAFT_CUDA_CHECK(e);
      return e == cudaSuccess;
    });
  }

 private:
  // Nonblocking: finalize (the last sums flushed), waited for at most --dist-timeout (never
  // throwing: this runs in a destructor), then destroy; abort what did not finish.
  void finish_or_abort() noexcept {
    ncclResult_t async = ncclCommFinalize(comm_);
    const auto start = std::chrono::steady_clock::now();
    const double limit = timeout_ > 0 ? timeout_ : 60.0;
    while (async == ncclInProgress &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (ncclCommGetAsyncError(comm_, &async) != ncclSuccess) break;
    }
    (void)(async == ncclSuccess ? ncclCommDestroy(comm_) : ncclCommAbort(comm_));
    comm_ = nullptr;
  }

  void destroy_stream_and_events() noexcept {
    if (done_) (void)cudaEventDestroy(done_);
    if (ready_) (void)cudaEventDestroy(ready_);
    if (side_) (void)cudaStreamDestroy(side_);
    done_ = ready_ = nullptr;
    side_ = nullptr;
  }

  // Until NCCL has finished what the last call started (ncclInProgress: nonblocking).
  void settle(const char* what) {
    poll(what, [this, what] {
      ncclResult_t async = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
      if (r != ncclSuccess && r != ncclInProgress) check(r, what);
      return async == ncclSuccess;  // an error: poll() aborts naming it
    });
  }

  // Calls done() with a growing pause until it is true; NCCL's asynchronous errors and
  // --dist-timeout end the wait with a named error and the communicator aborted.
  template <class Done>
  void poll(const char* what, Done done) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto pause = std::chrono::microseconds(0);
    for (;;) {
      if (done()) return;
      ncclResult_t async = ncclSuccess;
      const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
      if (r != ncclSuccess && r != ncclInProgress) check(r, what);
      if (async != ncclSuccess && async != ncclInProgress)
        abort_with(what, std::string("NCCL reported ") + ncclGetErrorString(async));
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (timeout_ > 0 && waited > timeout_)
        abort_with(what, "waited " + std::to_string(static_cast<int>(waited)) +
                             " s for the other ranks (--dist-timeout " + std::to_string(timeout_) +
                             "): a rank died or hangs");
      if (waited > 1e-4) {
        pause = std::min(pause + std::chrono::microseconds(20), std::chrono::microseconds(2000));
        std::this_thread::sleep_for(pause);
      }
    }
  }

 private:
  [[noreturn]] void abort_with(const char* what, const std::string& why) {
    (void)ncclCommAbort(comm_);
    comm_ = nullptr;
    fail("NCCL error in ", what, " on rank ", rank(), " of ", size(), ": ", why,
         "; the NCCL communicator is aborted");
  }

  // ncclInProgress is no error: the nonblocking call goes on, and settle() waits for it.
  void check(ncclResult_t r, const char* what) const {
    if (r != ncclSuccess && r != ncclInProgress)
      fail("NCCL error in ", what, " on rank ", host_->rank(), " of ", host_->size(), ": ", ncclGetErrorString(r),
           r == ncclSystemError || r == ncclRemoteError ? " (NCCL_DEBUG=WARN says more)"
           : r == ncclInvalidUsage ? " (NCCL_DEBUG=WARN says more; two ranks on one GPU are refused: give each rank "
                                     "its own, e.g. srun --gpus-per-task 1 or mpirun -npernode <GPUs per node>)"
                                   : "");
  }

  std::unique_ptr<Communicator> host_;
  double timeout_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t compute_ = nullptr, side_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  bool pending_ = false;
};

}  // namespace

int local_rank_from_environment() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"}) {
    if (const char* s = std::getenv(v)) {
      char* end = nullptr;
      const long r = std::strtol(s, &end, 10);
      if (end == s || *end != '\0' || r < 0) fail("the launcher's ", v, "=\"", s, "\" is not a local rank (0, 1, ...)");
      return static_cast<int>(r);
    }
  }
  return 0;
}

int visible_gpus() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    (void)cudaGetLastError();  // no device is an answer here, not an error
    return 0;
  }
  return devices;
}

void select_device_for_local_rank(int local_rank, int world_rank) {
  int devices = 0;
  GRAFT_CUDA_CHECK(cudaGetDeviceCount(&devices));
  GRAFT_CUDA_CHECK(cudaSetDevice(device_for_local_rank(local_rank, devices, world_rank)));
}

std::unique_ptr<Communicator> nccl_communicator(std::unique_ptr<Communicator> host, double timeout_seconds) {
  GRAFT_ASSERT(host != nullptr, "nccl_communicator needs the host communicator");
  return std::make_unique<NcclCommunicator>(std::move(host), timeout_seconds);
}

}  // namespace graft
