// BatchNorm2d (PyTorch's semantics, channels last). Also normalises a [N, C] input (as
// BatchNorm1d), the channel being the last dimension either way.
//   params:  weight [C] (ones), bias [C] (zeros)                              trainable
//   buffers: running_mean [C] (zeros), running_var [C] (ones), num_batches_tracked [] (0)
// Names and shapes are torchvision's state_dict entries (num_batches_tracked is int64 in
// PyTorch and a float here; checkpoints convert on load).
//
// BnPolicy decides which statistics normalise and whether running statistics move:
//   Train        training (ctx->training): batch statistics, running stats and
//                num_batches_tracked updated (momentum 0.1, unbiased variance);
//                evaluation: running statistics.
//   FrozenStats  running statistics always, never updated; the affine weight and bias
//                still train (if the node is not frozen).
//   Frozen       running statistics always, never updated; the node is normally frozen
//                too, so nothing about it changes. (If the node is not frozen, its affine
//                parameters still get gradients: freezing is the executor's business.)
// Backward: the full batch-norm backward where the forward used batch statistics, the
// affine backward where it used running statistics.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "layers/flattened_order.h"
#include "runtime/layer.h"

namespace graft {

class Model;

enum class BnPolicy { Train, FrozenStats, Frozen };

// "train", "frozen-stats", "frozen"; throws naming the accepted values otherwise.
BnPolicy parse_bn_policy(const std::string& text);
const char* bn_policy_name(BnPolicy p);

class BatchNorm2d final : public Layer {
 public:
  BatchNorm2d(std::string name, int channels, float eps = 1e-5f, float momentum = 0.1f);
  std::string kind() const override { return "batchnorm"; }
  std::string describe() const override;
  // Policy train: batch statistics in training (the same input, another batch, another output).
  std::string training_randomness() const override;
  // After a flatten (BatchNorm1d over H*W*C features): the features keep their order, and
  // the per-feature parameters and buffers are permuted to PyTorch's CHW at the boundary.
  LayoutRole layout_role() const override { return LayoutRole::PassThrough; }
  void bind_flattened_input(int h, int w, int c) override;
  void to_checkpoint_layout(size_t index, const float* internal, float* external) const override;
  void from_checkpoint_layout(size_t index, const float* external, float* internal) const override;
  // Inference form: BatchNormalization on the running statistics, whatever the policy.
  std::string export_onnx(OnnxGraph& graph, const OnnxNodeArgs& args) const override;
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  std::vector<ParamSpec> param_specs() const override;
  size_t workspace_floats(const std::vector<Shape>& inputs) const override;
  void forward(const ForwardArgs& a) override;
  void backward(const BackwardArgs& a) override;

  int channels() const { return channels_; }
  BnPolicy policy() const { return policy_; }
  void set_policy(BnPolicy p) { policy_ = p; }
  // Whether a pass in this context normalises with the batch's statistics.
  bool uses_batch_stats(const ExecContext& ctx) const { return ctx.training && policy_ == BnPolicy::Train; }

 private:
  int channels_;
  float eps_, momentum_;
  BnPolicy policy_ = BnPolicy::Train;
  FlattenedOrder flat_;  // after a flatten: the checkpoint's (CHW) order of its values
};

// Sets every BatchNorm2d node's policy: nodes frozen in `frozen_nodes` (one flag per node,
// or empty for none) get Frozen, the others Train; then each override (fnmatch glob on the
// node name -> policy) applies in order, later ones winning. A glob that matches no batch
// norm node is an error naming it and the batch norm nodes there are.
void apply_batchnorm_policy(Model& model, const std::vector<bool>& frozen_nodes,
                            const std::vector<std::pair<std::string, BnPolicy>>& overrides);

}  // namespace graft
