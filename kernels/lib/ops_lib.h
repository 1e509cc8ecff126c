// LibOps: Ops through cuDNN (convolution, pooling) and cuBLAS/cuBLASLt (dense), on the same
// stream as CudaOps; every op without a library version (element-wise, batch norm, losses,
// adaptive pooling, max-pool backward, optimizer steps) is CudaOps' hand-written kernel.
// Max-pool backward stays native because cuDNN's reads the forward output, which the plan
// does not keep. The LibraryContext (handles, per-shape plans, workspace) is owned here and
// draws its workspaces from the same pool.
#pragma once
#include <memory>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/lib/context.h"

namespace graft::lib {

class LibOps final : public cuda::CudaOps {
 public:
  explicit LibOps(MemoryPool& pool, LibraryOptions options = {});
  const char* name() const override { return ctx_->options().bf16 ? "cuda library bf16" : "cuda library"; }
  bool computes_bf16() const override { return ctx_->options().bf16; }
  LibraryContext& context() { return *ctx_; }

  size_t conv2d_workspace_floats(const Conv2dGeometry& g) override;
  void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                      float* workspace) override;
  void conv2d_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                            float* workspace) override;
  void conv2d_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                              float* workspace) override;

  void dense_forward(int n, int in, int out, const float* x, const float* w, const float* bias, float* y) override;
  void dense_backward_data(int n, int in, int out, const float* dy, const float* w, float* dx) override;
  void dense_backward_weights(int n, int in, int out, const float* x, const float* dy, float* dw,
                              float* dbias) override;

  void maxpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override;
  void avgpool2d_forward(const Pool2dGeometry& g, const float* x, float* y) override;
  void avgpool2d_backward(const Pool2dGeometry& g, const float* dy, float* dx) override;
  void global_avgpool_forward(int n, int h, int w, int c, const float* x, float* y) override;
  void global_avgpool_backward(int n, int h, int w, int c, const float* dy, float* dx) override;

  // cuDNN's RNN API (kernels/lib/rnn.cu); embedding and sequence pooling stay CudaOps'.
  size_t rnn_reserve_floats(const RnnGeometry& g) override;
  size_t rnn_workspace_floats(const RnnGeometry& g) override;
  void rnn_forward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                   const RnnWeights& w, float* y, float* reserve, float* workspace) override;
  void rnn_backward(const RnnGeometry& g, const float* x, const int32_t* host_lengths, const int32_t* lengths,
                    const RnnWeights& w, const float* y, const float* dy, float* reserve, float* dx,
                    const RnnGradients& dw, float* workspace) override;

 private:
  std::unique_ptr<LibraryContext> ctx_;
};

}  // namespace graft::lib
