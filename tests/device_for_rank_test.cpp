// Which GPU a data-parallel rank trains on (runtime/communicator.h device_for_local_rank):
// its local rank's when the process sees the node's GPUs, the one it sees when the launcher
// binds one GPU per rank (srun --gpus-per-task 1: every rank sees "GPU 0"), and a named
// error when there is none or more local ranks than GPUs. No device needed: the rule is pure.
#include "runtime/communicator.h"
#include "tests/testing.h"

namespace graft::testing {
namespace {

TEST(DeviceForLocalRank, EachRankTakesItsOwnGpuOfTheNode) {
  const int visible = random_int(2, 16);
  for (int local = 0; local < visible; ++local) EXPECT_EQ(device_for_local_rank(local, visible, local + 8), local);
}

TEST(DeviceForLocalRank, ARankBoundToOneGpuTakesIt) {
  for (int local : {0, 1, random_int(2, 63)}) EXPECT_EQ(device_for_local_rank(local, 1, 100 + local), 0);
}

TEST(DeviceForLocalRank, MoreLocalRanksThanGpusIsRefusedByName) {
  const int visible = random_int(2, 8), local = visible + random_int(0, 4), world = random_int(9, 99);
  expect_error([&] { (void)device_for_local_rank(local, visible, world); },
               {"rank " + std::to_string(world), "local rank " + std::to_string(local), std::to_string(visible) + " GPU",
                "ranks per node"});
}

TEST(DeviceForLocalRank, NoGpuIsRefusedByName) {
  const int world = random_int(0, 99);
  expect_error([&] { (void)device_for_local_rank(0, 0, world); },
               {"rank " + std::to_string(world), "sees no GPU", "CUDA_VISIBLE_DEVICES", "--device cpu"});
}

}  // namespace
}  // namespace graft::testing
