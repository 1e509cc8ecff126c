// Dense layer on the device, native tiled GEMM and cuBLASLt/cuBLAS, forward (bias and ReLU
// fused) and backward, against the CPU reference.
#include <vector>

#include "gpu_testing.h"
#include "kernels/cpu/dense.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/dense.h"
#include "kernels/lib/dense.h"

namespace graft::testing {
namespace {

struct DenseShape {
  int n, in, out;
};
const std::vector<DenseShape> kShapes = {{1, 1, 1},    {3, 17, 5},   {32, 257, 130}, {7, 1000, 10},
                                         {1, 64, 65},  {64, 512, 1024}, {33, 63, 129}};

std::string describe(const DenseShape& s) {
  return "dense n=" + std::to_string(s.n) + " in=" + std::to_string(s.in) + " out=" + std::to_string(s.out);
}

class DenseGpu : public GpuTest {
 protected:
  void forward(Impl impl) {
    for (const auto& s : kShapes)
      for (bool with_bias : {true, false})
        for (bool relu : {false, true}) {
          SCOPED_TRACE(describe(s) + (with_bias ? " bias" : "") + (relu ? " relu " : " ") + name(impl));
          const auto x = random_floats(static_cast<size_t>(s.n) * s.in), w = random_floats(static_cast<size_t>(s.out) * s.in),
                     b = random_floats(s.out);
          std::vector<float> ref(static_cast<size_t>(s.n) * s.out);
          cpu::dense_forward_reference(s.n, s.in, s.out, x.data(), w.data(), with_bias ? b.data() : nullptr, ref.data());
          if (relu) cpu::relu_forward(static_cast<int64_t>(ref.size()), ref.data(), ref.data());
          auto dx = to_device(x), dw = to_device(w), db = to_device(b);
          auto dy = poisoned_device(ref.size());
          const float* bias = with_bias ? db.get() : nullptr;
          if (impl == Impl::Native)
            cuda::dense_forward(s.n, s.in, s.out, dx.get(), dw.get(), bias, dy.get(), stream(), relu);
          else
            lib::dense_forward(lib(), s.n, s.in, s.out, dx.get(), dw.get(), bias, dy.get(), stream(), relu);
          EXPECT_LT(relative_error(dy.download(), ref), kFp32Tolerance);
        }
  }

  void backward(Impl impl) {
    for (const auto& s : kShapes)
      for (bool with_bias : {true, false}) {
        SCOPED_TRACE(describe(s) + (with_bias ? " dbias " : " ") + name(impl));
        const auto x = random_floats(static_cast<size_t>(s.n) * s.in), w = random_floats(static_cast<size_t>(s.out) * s.in),
                   dy = random_floats(static_cast<size_t>(s.n) * s.out);
        std::vector<float> ref_dx(x.size()), ref_dw(w.size()), ref_db(s.out);
        cpu::dense_backward_data_reference(s.n, s.in, s.out, dy.data(), w.data(), ref_dx.data());
        cpu::dense_backward_weights_reference(s.n, s.in, s.out, x.data(), dy.data(), ref_dw.data(),
                                              with_bias ? ref_db.data() : nullptr);
        auto dx_in = to_device(x), dw_in = to_device(w), ddy = to_device(dy);
        auto ddx = poisoned_device(x.size()), ddw = poisoned_device(w.size()), ddb = poisoned_device(s.out);
        float* dbias = with_bias ? ddb.get() : nullptr;
        if (impl == Impl::Native) {
          cuda::dense_backward_data(s.n, s.in, s.out, ddy.get(), dw_in.get(), ddx.get(), stream());
          cuda::dense_backward_weights(s.n, s.in, s.out, dx_in.get(), ddy.get(), ddw.get(), dbias, stream());
        } else {
          lib::dense_backward_data(lib(), s.n, s.in, s.out, ddy.get(), dw_in.get(), ddx.get(), stream());
          lib::dense_backward_weights(lib(), s.n, s.in, s.out, dx_in.get(), ddy.get(), ddw.get(), dbias, stream());
        }
        EXPECT_LT(relative_error(ddx.download(), ref_dx), kFp32Tolerance) << "dx";
        EXPECT_LT(relative_error(ddw.download(), ref_dw), kFp32Tolerance) << "dw";
        if (with_bias) {
          EXPECT_LT(relative_error(ddb.download(), ref_db), kFp32Tolerance) << "dbias";
        }
      }
  }
};

// Pointers inside a flat buffer (a weight after an odd-sized bias in the parameters, a chunk
// of rows) may be only 4- or 8-byte aligned: cuBLASLt gets a plan made for the alignment
// each call's pointers have (one per alignment), and the answer is the CPU's.
TEST_F(DenseGpu, LibraryForwardOnPointersOfEveryAlignment) {
  const DenseShape s{random_int(1, 40), random_int(1, 300), random_int(1, 200)};
  SCOPED_TRACE(describe(s));
  const auto x = random_floats(size_t(s.n) * s.in), w = random_floats(size_t(s.out) * s.in), b = random_floats(s.out);
  std::vector<float> ref(size_t(s.n) * s.out);
  cpu::dense_forward_reference(s.n, s.in, s.out, x.data(), w.data(), b.data(), ref.data());
  auto at = [](const std::vector<float>& v, int offset) {
    std::vector<float> padded(size_t(offset), 0.0f);
    padded.insert(padded.end(), v.begin(), v.end());
    return to_device(padded);
  };
  const size_t plans_before = lib().dense_plans.size();
  for (int offset : {1, 2, 3, 0}) {  // 4, 8, 4 and 16-byte (or better) aligned
    SCOPED_TRACE("offset " + std::to_string(offset) + " floats");
    auto dx = at(x, offset), dw = at(w, offset), db = at(b, offset);
    auto dy = to_device(poisoned(ref.size() + size_t(offset)));
    lib::dense_forward(lib(), s.n, s.in, s.out, dx.get() + offset, dw.get() + offset, db.get() + offset,
                       dy.get() + offset, stream(), false);
    const auto got = dy.download();
    EXPECT_LT(relative_error(got.data() + offset, ref.data(), ref.size()), kFp32Tolerance);
  }
  EXPECT_EQ(lib().dense_plans.size(), plans_before + 3) << "one plan per alignment: 4, 8, 16";
}

TEST_F(DenseGpu, NativeForward) { forward(Impl::Native); }
TEST_F(DenseGpu, LibraryForward) { forward(Impl::Library); }
TEST_F(DenseGpu, NativeBackward) { backward(Impl::Native); }
TEST_F(DenseGpu, LibraryBackward) { backward(Impl::Library); }

}  // namespace
}  // namespace graft::testing
