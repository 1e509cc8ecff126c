// The single-process communicator.
#include "runtime/communicator.h"

#include "base/error.h"

namespace graft {
namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "1 process"; }
  void sum(float*, size_t, const char*) override {}
  void sum(double*, size_t, const char*) override {}
  void start_sum(float*, size_t, const char*) override {}
  void wait_all(const char*) override {}
  void broadcast(void*, size_t, int, const char*) override {}
  void barrier(const char*) override {}
  void end_all(int) override {}
};

}  // namespace

std::unique_ptr<Communicator> single_process_communicator() { return std::make_unique<SingleProcess>(); }

int device_for_local_rank(int local_rank, int visible, int world_rank) {
  GRAFT_ASSERT(local_rank >= 0, "local rank ", local_rank);
  if (visible <= 0)
    fail("rank ", world_rank, " (local rank ", local_rank, ") sees no GPU: data-parallel training on the GPU "
         "runs one process per GPU; check CUDA_VISIBLE_DEVICES and the launcher's GPU binding, or use --device cpu");
  if (visible == 1) return 0;  // the launcher bound this rank to its own GPU
  if (local_rank >= visible)
    fail("rank ", world_rank, " is local rank ", local_rank, " on its node, which has ", visible,
         " GPU(s): data-parallel training runs one process per GPU; start at most ", visible,
         " ranks per node (mpirun -npernode ", visible, ", srun --ntasks-per-node ", visible, ")");
  return local_rank;
}

}  // namespace graft
