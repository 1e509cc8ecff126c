// MPI_COMM_WORLD behind the Communicator interface, with a deadline on every collective.
#include "runtime/mpi/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "base/error.h"

namespace graft {
namespace {

std::mutex init_mutex;
int live_communicators = 0;
bool we_initialized = false;

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_seconds) : timeout_(timeout_seconds) {
    {
      std::lock_guard<std::mutex> lock(init_mutex);
      int initialized = 0;
      MPI_Initialized(&initialized);
      if (!initialized) {
        int provided = 0;
        // Only the trainer's thread calls MPI.
        if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
          fail("MPI_Init_thread failed: is this process started by mpirun or srun with a working MPI?");
        we_initialized = true;
      }
      ++live_communicators;
    }
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    // Errors come back as codes (reported by name), not as MPI's default abort.
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  ~MpiCommunicator() override {
    MPI_Comm_free(&comm_);
    std::lock_guard<std::mutex> lock(init_mutex);
    if (--live_communicators == 0 && we_initialized) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return "MPI, " + std::to_string(size_) + " ranks"; }

  void sum(float* data, size_t count, const char* what) override { reduce(data, count, MPI_FLOAT, what); }
  void sum(double* data, size_t count, const char* what) override { reduce(data, count, MPI_DOUBLE, what); }

  void start_sum(float* data, size_t count, const char* what) override {
    for (size_t done = 0; done < count;) {
      const int n = static_cast<int>(std::min(count - done, kChunk / sizeof(float)));
      pending_.emplace_back();
      check(MPI_Iallreduce(MPI_IN_PLACE, data + done, n, MPI_FLOAT, MPI_SUM, comm_, &pending_.back()), what);
      done += static_cast<size_t>(n);
    }
  }

  void wait_all(const char* what) override {
    for (MPI_Request& r : pending_) wait(r, what);
    pending_.clear();
  }

  void broadcast(void* data, size_t bytes, int root, const char* what) override {
    // Large buffers in pieces: MPI counts are int.
    auto* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes;) {
      const int n = static_cast<int>(std::min(bytes - done, kChunk));
      MPI_Request request;
      check(MPI_Ibcast(p + done, n, MPI_BYTE, root, comm_, &request), what);
      wait(request, what);
      done += static_cast<size_t>(n);
    }
  }

  void barrier(const char* what) override {
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), what);
    wait(request, what);
  }

  void end_all(int exit_code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(comm_, exit_code);
  }

 private:
  static constexpr size_t kChunk = size_t(1) << 30;

  void reduce(void* data, size_t count, MPI_Datatype type, const char* what) {
    int type_size = 0;
    MPI_Type_size(type, &type_size);
    auto* p = static_cast<char*>(data);
    const size_t per_chunk = kChunk / static_cast<size_t>(type_size);
    for (size_t done = 0; done < count;) {
      const int n = static_cast<int>(std::min(count - done, per_chunk));
      MPI_Request request;
      check(MPI_Iallreduce(MPI_IN_PLACE, p + done * static_cast<size_t>(type_size), n, type, MPI_SUM, comm_, &request),
            what);
      wait(request, what);
      done += static_cast<size_t>(n);
    }
  }

  // Polls `request` until it completes; past the deadline every rank is ended, naming `what`.
  void wait(MPI_Request& request, const char* what) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto pause = std::chrono::microseconds(0);
    for (;;) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (timeout_ > 0 && waited > timeout_) {
        std::fflush(stdout);
        std::fprintf(stderr,
                     "graft: error: rank %d of %d waited %.0f s in %s for the other ranks (--dist-timeout %g): a rank "
                     "died or hangs; ending every rank\n",
                     rank_, size_, waited, what, timeout_);
        std::fflush(stderr);
        MPI_Abort(comm_, 1);
      }
      // Spin briefly (a step's reduction is usually ready), then sleep in growing steps.
      if (waited > 1e-4) {
        pause = std::min(pause + std::chrono::microseconds(20), std::chrono::microseconds(2000));
        std::this_thread::sleep_for(pause);
      }
    }
  }

  void check(int code, const char* what) const {
    if (code != MPI_SUCCESS) fail("MPI error in ", what, " on rank ", rank_, ": ", mpi_error_text(code));
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  std::vector<MPI_Request> pending_;  // sums started, not yet waited for
  int rank_ = 0, size_ = 1;
  double timeout_;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

std::unique_ptr<Communicator> mpi_communicator(double timeout_seconds) {
  return std::make_unique<MpiCommunicator>(timeout_seconds);
}

}  // namespace graft
