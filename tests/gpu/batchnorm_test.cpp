// Batch norm's CUDA kernels against the CPU reference: on many rows (an NHWC activation's
// pixels) in every mode (batch statistics with the running update and num_batches_tracked,
// running statistics, backward through either), and on one value per channel (rows == 1, as
// a batch of one [n, c] activation in training): the same defined result as the CPU (y =
// beta, dx = 0, dgamma = 0, dbeta = dy, nothing divided by zero), and updating the running
// statistics is the same error, before any launch, leaving them as they were.
#include <cmath>
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/batchnorm.h"
#include "kernels/cuda/batchnorm.h"

namespace graft::testing {
namespace {

class BatchNormGpu : public GpuTest {};

TEST_F(BatchNormGpu, ManyRowsEveryModeAsTheCpu) {
  const int64_t rows = random_int(2, 3000);
  const int c = random_int(1, 70);
  SCOPED_TRACE("rows " + std::to_string(rows) + ", channels " + std::to_string(c));
  const float eps = std::pow(10.0f, -float(random_int(3, 5))), momentum = 0.05f * float(random_int(1, 6));
  const size_t n = size_t(rows) * size_t(c), cs = size_t(c);
  // Channels with their own offset and scale, as after a convolution.
  auto x = random_floats(n);
  const auto offset = random_floats(cs, -2.0f, 2.0f), scale = random_floats(cs, 0.1f, 4.0f);
  for (size_t i = 0; i < n; ++i) x[i] = offset[i % cs] + scale[i % cs] * x[i];
  const auto gamma = random_floats(cs, 0.5f, 2.0f), beta = random_floats(cs), dy = random_floats(n);
  const auto rmean0 = random_floats(cs), rvar0 = random_floats(cs, 0.5f, 2.0f);
  std::vector<double> scratch(cs * cpu::kBatchNormScratchDoubles);

  std::vector<float> ref_y(n), ref_rmean = rmean0, ref_rvar = rvar0;
  cpu::batchnorm_forward_batch(rows, c, eps, momentum, x.data(), gamma.data(), beta.data(), ref_y.data(),
                               ref_rmean.data(), ref_rvar.data(), scratch.data());
  std::vector<float> ref_yr(n), ref_dx(n), ref_dgamma(cs), ref_dbeta(cs), ref_dxr(n), ref_dgammar(cs), ref_dbetar(cs);
  cpu::batchnorm_forward_running(rows, c, eps, x.data(), gamma.data(), beta.data(), rmean0.data(), rvar0.data(),
                                 ref_yr.data());
  cpu::batchnorm_backward_batch(rows, c, eps, x.data(), dy.data(), gamma.data(), ref_dx.data(), ref_dgamma.data(),
                                ref_dbeta.data(), scratch.data());
  cpu::batchnorm_backward_running(rows, c, eps, x.data(), dy.data(), gamma.data(), rmean0.data(), rvar0.data(),
                                  ref_dxr.data(), ref_dgammar.data(), ref_dbetar.data(), scratch.data());

  auto dx_in = to_device(x), dgamma_in = to_device(gamma), dbeta_in = to_device(beta), ddy = to_device(dy);
  auto rmean = to_device(rmean0), rvar = to_device(rvar0), rmean_fixed = to_device(rmean0), rvar_fixed = to_device(rvar0);
  const float tracked0 = float(random_int(0, 100));
  auto tracked = to_device(std::vector<float>{tracked0});
  DeviceArray<double> dscratch(cs * cpu::kBatchNormScratchDoubles);
  auto y = poisoned_device(n), yr = poisoned_device(n), dx = poisoned_device(n), dxr = poisoned_device(n);
  auto dgamma = poisoned_device(cs), dbeta = poisoned_device(cs), dgammar = poisoned_device(cs),
       dbetar = poisoned_device(cs);
  cuda::batchnorm_forward_batch(rows, c, eps, momentum, dx_in.get(), dgamma_in.get(), dbeta_in.get(), y.get(),
                                rmean.get(), rvar.get(), tracked.get(), dscratch.get(), stream());
  cuda::batchnorm_forward_running(rows, c, eps, dx_in.get(), dgamma_in.get(), dbeta_in.get(), rmean_fixed.get(),
                                  rvar_fixed.get(), yr.get(), dscratch.get(), stream());
  cuda::batchnorm_backward_batch(rows, c, eps, dx_in.get(), ddy.get(), dgamma_in.get(), dx.get(), dgamma.get(),
                                 dbeta.get(), dscratch.get(), stream());
  cuda::batchnorm_backward_running(rows, c, eps, dx_in.get(), ddy.get(), dgamma_in.get(), rmean_fixed.get(),
                                   rvar_fixed.get(), dxr.get(), dgammar.get(), dbetar.get(), dscratch.get(), stream());
  EXPECT_LT(relative_error(y.download(), ref_y), kFp32Tolerance) << "y, batch statistics";
  EXPECT_LT(relative_error(rmean.download(), ref_rmean), kFp32Tolerance) << "running mean";
  EXPECT_LT(relative_error(rvar.download(), ref_rvar), kFp32Tolerance) << "running var (unbiased)";
  EXPECT_EQ(tracked.download(), std::vector<float>{tracked0 + 1}) << "num_batches_tracked";
  EXPECT_LT(relative_error(yr.download(), ref_yr), kFp32Tolerance) << "y, running statistics";
  EXPECT_LT(relative_error(dx.download(), ref_dx), kFp32Tolerance) << "dx, batch statistics";
  EXPECT_LT(relative_error(dgamma.download(), ref_dgamma), kFp32Tolerance) << "dgamma, batch statistics";
  EXPECT_LT(relative_error(dbeta.download(), ref_dbeta), kFp32Tolerance) << "dbeta, batch statistics";
  EXPECT_LT(relative_error(dxr.download(), ref_dxr), kFp32Tolerance) << "dx, running statistics";
  EXPECT_LT(relative_error(dgammar.download(), ref_dgammar), kFp32Tolerance) << "dgamma, running statistics";
  EXPECT_LT(relative_error(dbetar.download(), ref_dbetar), kFp32Tolerance) << "dbeta, running statistics";
}

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
