// Batch norm's CUDA kernels on one value per channel (rows == 1, as a batch of one [n, c]
// activation in training): the same defined result as the CPU reference (y = beta, dx = 0,
// dgamma = 0, dbeta = dy, nothing divided by zero), and updating the running statistics is
// the same error, before any launch, leaving them as they were.
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/batchnorm.h"
#include "kernels/cuda/batchnorm.h"

namespace graft::testing {
namespace {

class BatchNormGpu : public GpuTest {};

TEST_F(BatchNormGpu, OneValuePerChannelAsTheCpu) {
  const int c = random_int(1, 300);
  SCOPED_TRACE("channels " + std::to_string(c));
  const float eps = 1e-5f;
  const auto x = random_floats(size_t(c), -3.0f, 3.0f), gamma = random_floats(size_t(c), 0.5f, 2.0f);
  const auto beta = random_floats(size_t(c)), dy = random_floats(size_t(c));
  std::vector<double> scratch(size_t(c) * cpu::kBatchNormScratchDoubles);
  const size_t cs = size_t(c);
  std::vector<float> ref_y(cs), ref_dx(cs), ref_dgamma(cs), ref_dbeta(cs);
  cpu::batchnorm_forward_batch(1, c, eps, 0.1f, x.data(), gamma.data(), beta.data(), ref_y.data(), nullptr, nullptr,
                               scratch.data());
  cpu::batchnorm_backward_batch(1, c, eps, x.data(), dy.data(), gamma.data(), ref_dx.data(), ref_dgamma.data(),
                                ref_dbeta.data(), scratch.data());

  auto dx_in = to_device(x), dgamma_in = to_device(gamma), dbeta_in = to_device(beta), ddy = to_device(dy);
  DeviceArray<double> dscratch(size_t(c) * cpu::kBatchNormScratchDoubles);
  auto y = poisoned_device(size_t(c)), dx = poisoned_device(size_t(c));
  auto dgamma = poisoned_device(size_t(c)), dbeta = poisoned_device(size_t(c));
  cuda::batchnorm_forward_batch(1, c, eps, 0.1f, dx_in.get(), dgamma_in.get(), dbeta_in.get(), y.get(), nullptr,
                                nullptr, nullptr, dscratch.get(), stream());
  cuda::batchnorm_backward_batch(1, c, eps, dx_in.get(), ddy.get(), dgamma_in.get(), dx.get(), dgamma.get(),
                                 dbeta.get(), dscratch.get(), stream());
  EXPECT_LT(relative_error(y.download(), ref_y), kFp32Tolerance) << "y";
  EXPECT_EQ(dx.download(), ref_dx);  // exactly 0 on both
  EXPECT_EQ(dgamma.download(), ref_dgamma);
  EXPECT_LT(relative_error(dbeta.download(), ref_dbeta), kFp32Tolerance) << "dbeta";

  const auto rmean0 = random_floats(size_t(c)), rvar0 = random_floats(size_t(c), 0.5f, 2.0f);
  auto rmean = to_device(rmean0), rvar = to_device(rvar0);
  DeviceArray<float> tracked(1);
  expect_error([&] {
    cuda::batchnorm_forward_batch(1, c, eps, 0.1f, dx_in.get(), dgamma_in.get(), dbeta_in.get(), y.get(),
                                  rmean.get(), rvar.get(), tracked.get(), dscratch.get(), stream());
  }, {"more than 1 value per channel", "got 1 row"});
  EXPECT_EQ(rmean.download(), rmean0);
  EXPECT_EQ(rvar.download(), rvar0);
}

}  // namespace
}  // namespace graft::testing
