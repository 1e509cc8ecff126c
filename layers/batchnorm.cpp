// BatchNorm2d, and the per-node policy.
#include "layers/batchnorm.h"

#include "kernels/cpu/batchnorm.h"
#include "kernels/ops.h"
#include "base/error.h"
#include "runtime/onnx/graph.h"
#include "runtime/model.h"

namespace graft {

BnPolicy parse_bn_policy(const std::string& text) {
  if (text == "train") return BnPolicy::Train;
  if (text == "frozen-stats") return BnPolicy::FrozenStats;
  if (text == "frozen") return BnPolicy::Frozen;
  fail("batch norm policy '", text, "' is not one of: train, frozen-stats, frozen");
}

const char* bn_policy_name(BnPolicy p) {
  switch (p) {
    case BnPolicy::Train: return "train";
    case BnPolicy::FrozenStats: return "frozen-stats";
    case BnPolicy::Frozen: return "frozen";
  }
  return "?";
}

BatchNorm2d::BatchNorm2d(std::string name, int channels, float eps, float momentum)
    : Layer(std::move(name)), channels_(channels), eps_(eps), momentum_(momentum) {
  if (channels < 1 || !(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
    fail("layer ", this->name(), ": invalid batch norm settings (channels ", channels, ", eps ", eps, ", momentum ",
         momentum, ")");
}

std::string BatchNorm2d::describe() const {
  return detail::concat("batchnorm ", channels_, " (", bn_policy_name(policy_), ")");
}

std::string BatchNorm2d::training_randomness() const {
  return policy_ == BnPolicy::Train ? "(batch norm, policy train) normalises with each batch's statistics in training" : "";
}

void BatchNorm2d::bind_flattened_input(int h, int w, int c) {
  flat_.bind(name(), h, w, c, channels_);
}

// Feature j of an (h, w, c)-ordered flattening sits at c * H * W + hw in PyTorch's; index 4
// (num_batches_tracked) is one number.
void BatchNorm2d::to_checkpoint_layout(size_t index, const float* internal, float* external) const {
  if (!flat_.active() || index > 3) return Layer::to_checkpoint_layout(index, internal, external);
  for (int64_t j = 0; j < channels_; ++j) external[flat_.pytorch_index(j)] = internal[j];
}

void BatchNorm2d::from_checkpoint_layout(size_t index, const float* external, float* internal) const {
  if (!flat_.active() || index > 3) return Layer::from_checkpoint_layout(index, external, internal);
  for (int64_t j = 0; j < channels_; ++j) internal[j] = external[flat_.pytorch_index(j)];
}

Shape BatchNorm2d::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  if ((in.rank() != 4 && in.rank() != 2) || in[in.rank() - 1] != channels_)
    fail("layer ", name(), " (", describe(), ") expects input [N, H, W, ", channels_, "] or [N, ", channels_,
         "], got ", in.str());
  return in;
}

std::vector<ParamSpec> BatchNorm2d::param_specs() const {
  const Shape c{channels_};
  std::vector<ParamSpec> specs{
      {"weight", c, c, ParamInit::Ones, 1},
      {"bias", c, c, ParamInit::Zeros, 1},
      {"running_mean", c, c, ParamInit::Zeros, 1},
      {"running_var", c, c, ParamInit::Ones, 1},
      {"num_batches_tracked", Shape{}, Shape{}, ParamInit::Zeros, 1},
  };
  for (size_t i = 2; i < specs.size(); ++i) specs[i].buffer = true;
  return specs;
}

size_t BatchNorm2d::workspace_floats(const std::vector<Shape>&) const {
  return size_t(cpu::kBatchNormScratchDoubles) * size_t(channels_) * (sizeof(double) / sizeof(float));
}

namespace {
int64_t rows_of(const Shape& s) { return s.numel() / s[s.rank() - 1]; }
}  // namespace

void BatchNorm2d::forward(const ForwardArgs& a) {
  const int64_t rows = rows_of(a.input_shapes[0]);
  const float* gamma = a.params[0];
  const float* beta = a.params[1];
  if (uses_batch_stats(*a.ctx)) {
    // PyTorch raises too: one value per channel has no variance to normalise by.
    if (rows < 2)
      fail("layer ", name(), " (", describe(), "): expected more than 1 value per channel when training, got input size ",
           a.input_shapes[0].str(), " (", rows, " value per channel); train with batches of at least 2 examples (the last ",
           "batch of an epoch too), or normalise with the running statistics: --bn '", name(), "=frozen-stats'");
    a.ctx->kernels().batchnorm_forward_batch(rows, channels_, eps_, momentum_, a.inputs[0], gamma, beta, a.output,
                                             a.params[2], a.params[3], a.params[4],
                                             reinterpret_cast<double*>(a.workspace));
  } else {
    a.ctx->kernels().batchnorm_forward_running(rows, channels_, eps_, a.inputs[0], gamma, beta, a.params[2],
                                               a.params[3], a.output, reinterpret_cast<double*>(a.workspace));
  }
}

void BatchNorm2d::backward(const BackwardArgs& a) {
  const int64_t rows = rows_of(a.input_shapes[0]);
  float* dgamma = a.dparams[0];
  float* dbeta = a.dparams[1];
  double* scratch = reinterpret_cast<double*>(a.workspace);
  if (uses_batch_stats(*a.ctx))
    a.ctx->kernels().batchnorm_backward_batch(rows, channels_, eps_, a.inputs[0], a.doutput, a.params[0],
                                              a.dinputs[0], dgamma, dbeta, scratch);
  else
    a.ctx->kernels().batchnorm_backward_running(rows, channels_, eps_, a.inputs[0], a.doutput, a.params[0],
                                                a.params[2], a.params[3], a.dinputs[0], dgamma, dbeta, scratch);
}

void apply_batchnorm_policy(Model& model, const std::vector<bool>& frozen_nodes,
                            const std::vector<std::pair<std::string, BnPolicy>>& overrides) {
  GRAFT_ASSERT(frozen_nodes.empty() || frozen_nodes.size() == model.nodes().size(), "one frozen flag per node");
  std::vector<BatchNorm2d*> bn(model.nodes().size(), nullptr);
  std::string names;
  for (size_t n = 0; n < model.nodes().size(); ++n) {
    bn[n] = dynamic_cast<BatchNorm2d*>(model.nodes()[n].layer.get());
    if (!bn[n]) continue;
    bn[n]->set_policy(!frozen_nodes.empty() && frozen_nodes[n] ? BnPolicy::Frozen : BnPolicy::Train);
    names += (names.empty() ? "" : ", ") + model.nodes()[n].name;
  }
  for (const auto& [glob, policy] : overrides) {
    const auto selected = select_nodes(model, glob, "--bn");
    bool matched = false;
    for (size_t n = 0; n < model.nodes().size(); ++n) {
      if (!bn[n] || !selected[n]) continue;
      bn[n]->set_policy(policy);
      matched = true;
    }
    if (!matched)
      fail("batch norm policy pattern '", glob, "' matches no batch norm layer in ", model.architecture(),
           names.empty() ? std::string(", which has none") : "; its batch norm layers are: " + names);
  }
}

std::string BatchNorm2d::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  std::vector<std::string> inputs{a.inputs.at(0)};
  for (size_t i = 0; i < 4; ++i) inputs.push_back(graph.add_parameter(*this, i, a.params.at(i)));  // weight .. running_var
  graph.add_node("BatchNormalization", inputs, {a.output}, {onnx_attr("epsilon", eps_)});
  return a.output;
}

}  // namespace graft
