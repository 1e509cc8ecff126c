// The layer contract. A layer knows its shapes, its parameters and its math; the executor
// owns everything else: which backward passes run (needs_grad), which gradients are
// wanted (a null pointer means "not needed": a frozen parameter, an input nobody needs a
// gradient for), and where every buffer lives (the plan).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "runtime/tensor.h"

namespace graft {

class Ops;
class OnnxGraph;      // runtime/onnx/graph.h
struct OnnxNodeArgs;

// How a parameter starts: PyTorch's defaults for conv and linear layers draw weight and
// bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Normal draws N(0, std^2) (torchvision's
// VGG and ResNet initialise their own layers so: see Conv2d and Dense).
enum class ParamInit { UniformFanIn, Normal, Zeros, Ones };

struct ParamSpec {
  std::string name;         // "weight", "bias"
  Shape shape;              // internal layout
  Shape checkpoint_shape;   // PyTorch's layout, as stored in checkpoints
  ParamInit init = ParamInit::UniformFanIn;
  int64_t fan_in = 1;
  // A buffer is persistent state that is saved and loaded but never trained and never
  // gets a gradient (BatchNorm's running statistics). Forward may update it.
  bool buffer = false;
  float std = 0;  // Normal's standard deviation
  int64_t zero_row = -1;  // >= 0: this row (first dimension) starts at zero (an embedding's padding_idx)
};

// What one forward or backward call sees. Shapes include the batch dimension.
struct ExecContext {
  Device device = Device::CPU;
  bool training = true;
  uint64_t seed = 0;   // dropout and other randomness: counter-based from (seed, step, node)
  int64_t step = 0;
  int node_index = 0;
  bool reference_kernels = false;  // run the plain-loop oracle instead of the fast CPU path
  Ops* ops = nullptr;              // the backend's kernels; null: the CPU ones (per reference_kernels)
  // Step graphs: the step count in the Ops' memory, written before every step, eager or
  // replayed, so recorded kernels read the step they run in. A layer that draws random
  // numbers passes it (and node_index) to its kernels; null: it uses `step`.
  const int64_t* step_counter = nullptr;
  // The batch's row 0 is row `first_row` of the whole batch: a data-parallel rank's rows, a
  // chunk of a frozen prefix. Counter-based randomness (dropout) draws row r's numbers at
  // first_row + r, so the parts together draw what one process draws for the whole batch.
  int64_t first_row = 0;
  // Sequences: the batch's per-example lengths (1..steps of the model input's first sample
  // dimension), in the Ops' memory and on the host (cuDNN wants both); both null: every
  // example has all its steps. Layers that read them say so (Layer::reads_sequence_lengths).
  const int32_t* lengths = nullptr;
  const int32_t* host_lengths = nullptr;

  // The kernels every layer calls: `ops`, else graft::cpu_ops(reference_kernels).
  Ops& kernels() const;
};

struct ForwardArgs {
  const ExecContext* ctx = nullptr;
  std::vector<const float*> inputs;
  std::vector<Shape> input_shapes;
  float* output = nullptr;
  Shape output_shape;
  std::vector<float*> params;       // every ParamSpec in order, buffers included
  float* workspace = nullptr;
  // What the forward keeps for this node's backward (Layer::reserve_floats_for), planned from
  // the forward to the backward; null when no backward follows (inference, a frozen prefix).
  float* reserve = nullptr;
};

struct BackwardArgs {
  const ExecContext* ctx = nullptr;
  std::vector<const float*> inputs;  // null when the plan did not keep them (the layer said it does not read them)
  std::vector<Shape> input_shapes;
  const float* output = nullptr;
  Shape output_shape;
  const float* doutput = nullptr;
  std::vector<float*> dinputs;       // overwrite; null = not needed
  std::vector<const float*> params;
  std::vector<float*> dparams;       // overwrite; null = frozen or a buffer: compute nothing for it
  float* workspace = nullptr;
  float* reserve = nullptr;          // the forward's (ForwardArgs::reserve)
};

// How a layer treats the order of its input's features, so Model::finalize can tell a
// dense layer that its input is a flattened NHWC activation (see Layer::bind_flattened_input).
enum class LayoutRole {
  Other,        // a flattened order stops here (new features: dense, pooling, ...)
  Flatten,      // [N, H, W, C] -> [N, H*W*C] in (h, w, c) order
  PassThrough,  // elementwise on one input: the features keep their order (a layer with a
                // parameter per feature is told the flattened shape too)
};

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;

  const std::string& name() const { return name_; }
  virtual std::string kind() const = 0;      // "conv2d", "dense", ...
  virtual std::string describe() const = 0;  // "conv2d 3x3 32 pad 1", for graft info
  virtual int num_inputs() const { return 1; }

  // Validates input shapes (batch first) and returns the output shape; throws graft::Error
  // naming the layer and the shapes when they do not fit.
  virtual Shape output_shape(const std::vector<Shape>& inputs) const = 0;
  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  virtual size_t workspace_floats(const std::vector<Shape>& inputs) const { return 0; }
  // The workspace these inputs need from `ops` (a backend may need more or less than the CPU).
  virtual size_t workspace_floats_for(const std::vector<Shape>& inputs, Ops& ops) const { return workspace_floats(inputs); }

  // Floats the forward keeps for the backward besides the output (a recurrent layer's gates
  // and states), when a backward will run; planned in the arena from forward to backward.
  virtual size_t reserve_floats_for(const std::vector<Shape>& /*inputs*/, Ops& /*ops*/) const { return 0; }
  // Whether forward or backward reads ExecContext::lengths (sequence layers).
  virtual bool reads_sequence_lengths() const { return false; }
  // Checks a batch of the model's input on the host before any kernel reads it, for a layer
  // fed by the model input (an embedding's ids); throws graft::Error naming the layer, the
  // example and the value. Default: nothing to check.
  virtual void check_model_input(const float* /*host*/, const Shape& /*shape*/) const {}

  // What backward reads, so the planner keeps exactly those activations alive.
  virtual bool backward_reads_inputs() const { return true; }
  virtual bool backward_reads_output() const { return false; }

  virtual void forward(const ForwardArgs& a) = 0;
  virtual void backward(const BackwardArgs& a) = 0;

  // What the runtime asks, so that it never needs the concrete type.
  virtual LayoutRole layout_role() const { return LayoutRole::Other; }
  // The input is a flattened [H, W, C] activation (a flatten, perhaps through pass-through
  // layers): its features come in (h, w, c) order, PyTorch's in (c, h, w). Default: no matter.
  virtual void bind_flattened_input(int /*h*/, int /*w*/, int /*c*/) {}
  // A matrix product (convolution, dense): the executor times its kernels (--kernels auto)
  // and rounds its operands for bf16 emulation.
  virtual bool is_gemm() const { return false; }
  // Whether forward in training draws from the counter-based RNG (seed, step, node).
  virtual bool draws_random_numbers() const { return false; }
  // Why the same input can give another output in training, as the words that follow the
  // node's name in a sentence ("(dropout, p 0.5) is random in training"), or "": such a
  // layer ends the frozen prefix (runtime/frozen_prefix.h). Default: a generic reason when
  // draws_random_numbers(), else "".
  virtual std::string training_randomness() const;

  // Internal layout <-> checkpoint (PyTorch) layout of parameter `index`; also used for
  // optimizer state, which has the parameter's layout. Default: identical.
  virtual void to_checkpoint_layout(size_t index, const float* internal, float* external) const;
  virtual void from_checkpoint_layout(size_t index, const float* external, float* internal) const;

  // ONNX export (runtime/onnx/): adds this layer's inference form to `graph` and returns
  // the name of the tensor that holds its output (args.output, or its input for a layer
  // that inference leaves out, like dropout). Default: an error naming the layer's kind.
  virtual std::string export_onnx(OnnxGraph& /*graph*/, const OnnxNodeArgs& /*args*/) const {
    fail("layer ", name(), " (", describe(), ") cannot be exported to ONNX: graft has no ONNX form for a ", kind(),
         " layer");
  }

 private:
  std::string name_;
};

using LayerPtr = std::unique_ptr<Layer>;

}  // namespace graft
