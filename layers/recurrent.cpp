// Recurrent layers: parameters by PyTorch's names, the stacked layers one kernel call each,
// and the node's reserve (what backward reads) laid out per stacked layer.
#include "layers/recurrent.h"

#include <algorithm>

#include "base/error.h"
#include "kernels/common/elementwise.h"
#include "runtime/onnx/graph.h"

namespace graft {

namespace {

constexpr size_t kPad = 64;  // floats: every buffer in the reserve and workspace starts aligned
size_t padded(size_t floats) { return (floats + kPad - 1) / kPad * kPad; }

// [N, steps, features], or an image [N, H, W, C] read as H steps of W*C features.
void sequence_dims(const Shape& in, int64_t& batch, int64_t& steps, int64_t& features) {
  batch = in[0];
  steps = in[1];
  features = in.numel() / std::max<int64_t>(batch * steps, 1);
}

}  // namespace

Recurrent::Recurrent(std::string name, int input_features, RecurrentOptions o)
    : Layer(std::move(name)), input_(input_features), options_(o) {
  if (input_features < 1 || o.hidden < 1 || o.layers < 1)
    fail("layer ", this->name(), ": ", kind(), " needs positive input, hidden size and layer count, got input ",
         input_features, ", hidden ", o.hidden, ", ", o.layers, " layers");
  if (!(o.dropout >= 0.0f && o.dropout < 1.0f))
    fail("layer ", this->name(), ": dropout between layers must be in [0, 1), got ", o.dropout);
}

std::string Recurrent::describe() const {
  return detail::concat(kind(), " ", input_, "->", options_.hidden, options_.layers > 1 ? detail::concat("x", options_.layers) : "",
                        options_.bidirectional ? " bi" : "",
                        options_.dropout > 0 && options_.layers > 1 ? detail::concat(" dropout ", options_.dropout) : "");
}

std::string Recurrent::training_randomness() const {
  return draws_random_numbers() ? detail::concat("(", kind(), ", dropout ", options_.dropout, " between layers) is random in training")
                                : "";
}

Shape Recurrent::output_shape(const std::vector<Shape>& inputs) const {
  const Shape& in = inputs.at(0);
  int64_t batch = 0, steps = 0, features = 0;
  if (in.rank() == 3 || in.rank() == 4) sequence_dims(in, batch, steps, features);
  if ((in.rank() != 3 && in.rank() != 4) || features != input_)
    fail("layer ", name(), " (", describe(), ") expects a sequence [N, steps, ", input_, "] (or an image [N, H, W, C] with W*C = ",
         input_, ", read a row per step), got ", in.str());
  return Shape{batch, steps, int64_t{output_features()}};
}

RnnGeometry Recurrent::geometry(const Shape& in, int l) const {
  RnnGeometry g;
  g.cell = options_.cell;
  g.batch = static_cast<int>(in[0]);
  g.steps = static_cast<int>(in[1]);
  g.input = layer_input(l);
  g.hidden = options_.hidden;
  g.bidirectional = options_.bidirectional;
  return g;
}

std::vector<ParamSpec> Recurrent::param_specs() const {
  const int64_t gh = int64_t{options_.cell == RnnCell::LSTM ? 4 : 3} * options_.hidden;
  std::vector<ParamSpec> specs;
  for (int l = 0; l < options_.layers; ++l)
    for (int d = 0; d < (options_.bidirectional ? 2 : 1); ++d) {
      const std::string suffix = "_l" + std::to_string(l) + (d ? "_reverse" : "");
      auto spec = [&](const std::string& n, Shape s) {
        specs.push_back(ParamSpec{n + suffix, s, s, ParamInit::UniformFanIn, options_.hidden});
      };
      spec("weight_ih", Shape{gh, layer_input(l)});
      spec("weight_hh", Shape{gh, options_.hidden});
      spec("bias_ih", Shape{gh});
      spec("bias_hh", Shape{gh});
    }
  return specs;
}

Recurrent::ReserveLayout Recurrent::reserve_layout(const Shape& in, Ops& ops) const {
  ReserveLayout r;
  const size_t between = padded(size_t(in[0] * in[1] * output_features()));
  for (int l = 0; l < options_.layers; ++l) {
    r.kernel.push_back(r.total);
    r.total += padded(ops.rnn_reserve_floats(geometry(in, l)));
    if (l == options_.layers - 1) break;
    r.output.push_back(r.total);
    r.total += between;
    r.next_input.push_back(options_.dropout > 0 ? r.total : r.output.back());
    if (options_.dropout > 0) r.total += between;
  }
  return r;
}

size_t Recurrent::reserve_floats_for(const std::vector<Shape>& inputs, Ops& ops) const {
  return reserve_layout(inputs.at(0), ops).total;
}

// Two buffers of one layer's output (inference's outputs between layers, backward's
// gradients between layers), then the kernels' scratch.
size_t Recurrent::workspace_floats_for(const std::vector<Shape>& inputs, Ops& ops) const {
  const Shape& in = inputs.at(0);
  size_t kernel = 0;
  for (int l = 0; l < options_.layers; ++l) kernel = std::max(kernel, ops.rnn_workspace_floats(geometry(in, l)));
  const size_t between = options_.layers > 1 ? 2 * padded(size_t(in[0] * in[1] * output_features())) : 0;
  return between + kernel;
}

// Stacked layer l's pointers per direction, out of the node's parameters (or their
// gradients) in PyTorch's order: per layer, per direction, w_ih, w_hh, b_ih, b_hh.
template <class W, class P>
W Recurrent::per_direction(const std::vector<P>& p, int l) const {
  W w;
  const int dirs = options_.bidirectional ? 2 : 1;
  for (int d = 0; d < dirs; ++d) {
    const size_t base = size_t(l * dirs + d) * 4;
    w.w_ih[d] = p.at(base);
    w.w_hh[d] = p.at(base + 1);
    w.b_ih[d] = p.at(base + 2);
    w.b_hh[d] = p.at(base + 3);
  }
  return w;
}

// Each stacked layer's dropout draws its own mask from the node's stream.
uint64_t Recurrent::dropout_seed(uint64_t seed, int l) const { return seed ^ (0x9E3779B97F4A7C15ull * uint64_t(l + 1)); }

void Recurrent::forward(const ForwardArgs& a) {
  const ExecContext& c = *a.ctx;
  Ops& ops = c.kernels();
  const Shape& in = a.input_shapes[0];
  const bool drop = c.training && options_.dropout > 0;
  const int64_t between = in[0] * in[1] * output_features();
  const int64_t first = c.first_row * in[1] * output_features();  // the mask counter of this batch's row 0
  const ReserveLayout r = a.reserve ? reserve_layout(in, ops) : ReserveLayout{};
  float* buf[2] = {a.workspace, a.workspace + (options_.layers > 1 ? padded(size_t(between)) : 0)};
  float* scratch = a.workspace + (options_.layers > 1 ? 2 * padded(size_t(between)) : 0);
  const float* x = a.inputs[0];
  for (int l = 0; l < options_.layers; ++l) {
    const bool last = l == options_.layers - 1;
    // Without a reserve (no backward follows) the outputs between layers take turns in the
    // workspace's two buffers, each written while the other is read.
    float* y = last ? a.output : a.reserve ? a.reserve + r.output[size_t(l)] : (x == buf[0] ? buf[1] : buf[0]);
    ops.rnn_forward(geometry(in, l), x, c.host_lengths, c.lengths, per_direction<RnnWeights>(a.params, l), y,
                    a.reserve ? a.reserve + r.kernel[size_t(l)] : nullptr, scratch);
    if (last) break;
    x = y;
    if (!drop) continue;
    float* next = a.reserve ? a.reserve + r.next_input[size_t(l)] : (y == buf[0] ? buf[1] : buf[0]);
    const uint64_t seed = dropout_seed(c.seed, l);
    if (c.step_counter)
      ops.dropout_forward_at(between, options_.dropout, seed, c.step_counter, c.node_index, first, y, next);
    else
      ops.dropout_forward(between, options_.dropout, seed, math::layer_stream(c.step, c.node_index), first, y, next);
    x = next;
  }
}

void Recurrent::backward(const BackwardArgs& a) {
  const ExecContext& c = *a.ctx;
  Ops& ops = c.kernels();
  GRAFT_ASSERT(a.reserve, "layer ", name(), ": backward without the forward's reserve");
  const Shape& in = a.input_shapes[0];
  const bool drop = c.training && options_.dropout > 0;
  const int64_t between = in[0] * in[1] * output_features();
  const int64_t first = c.first_row * in[1] * output_features();  // the mask counter of this batch's row 0
  const ReserveLayout r = reserve_layout(in, ops);
  float* buf[2] = {a.workspace, a.workspace + (options_.layers > 1 ? padded(size_t(between)) : 0)};
  float* scratch = a.workspace + (options_.layers > 1 ? 2 * padded(size_t(between)) : 0);
  const bool want_dw = a.dparams[0] != nullptr;
  const float* dy = a.doutput;
  for (int l = options_.layers - 1; l >= 0; --l) {
    const bool last = l == options_.layers - 1;
    const float* x = l == 0 ? a.inputs[0] : a.reserve + r.next_input[size_t(l - 1)];
    const float* y = last ? a.output : a.reserve + r.output[size_t(l)];
    float* dx = l == 0 ? a.dinputs[0] : (dy == buf[0] ? buf[1] : buf[0]);
    const RnnGradients dw = want_dw ? per_direction<RnnGradients>(a.dparams, l) : RnnGradients{};
    if (!dx && !want_dw) break;  // the first layer, when nothing below needs a gradient
    ops.rnn_backward(geometry(in, l), x, c.host_lengths, c.lengths, per_direction<RnnWeights>(a.params, l), y, dy,
                     a.reserve + r.kernel[size_t(l)], dx, dw, scratch);
    if (l == 0) break;
    dy = dx;  // the gradient of layer l-1's output after dropout; through the mask:
    if (!drop) continue;
    float* dpre = dx == buf[0] ? buf[1] : buf[0];
    const uint64_t seed = dropout_seed(c.seed, l - 1);
    if (c.step_counter)
      ops.dropout_backward_at(between, options_.dropout, seed, c.step_counter, c.node_index, first, dx, dpre);
    else
      ops.dropout_backward(between, options_.dropout, seed, math::layer_stream(c.step, c.node_index), first, dx, dpre);
    dy = dpre;
  }
}

// One ONNX LSTM or GRU node per stacked layer, time-major (onnxruntime runs layout 0 only),
// with the lengths as sequence_lens; PyTorch's gate blocks reordered to ONNX's (LSTM i,f,g,o
// -> i,o,f,c; GRU r,z,n -> z,r,h, linear_before_reset as PyTorch computes n) and its two
// biases side by side in B. Between layers Y [steps, dirs, N, H] becomes [steps, N, dirs*H]
// (forward then reverse, PyTorch's order); dropout is training only.
std::string Recurrent::export_onnx(OnnxGraph& graph, const OnnxNodeArgs& a) const {
  if (a.lengths.empty()) fail("graft export: ", name(), " needs the sequences' lengths as a graph input");
  const bool lstm = options_.cell == RnnCell::LSTM;
  const int64_t hidden = options_.hidden, dirs = options_.bidirectional ? 2 : 1, gates = lstm ? 4 : 3;
  const std::vector<int64_t> onnx_order = lstm ? std::vector<int64_t>{0, 3, 1, 2} : std::vector<int64_t>{1, 0, 2};
  const std::string prefix = a.output + "/";
  std::string x = prefix + "time_major";
  graph.add_node("Transpose", {a.inputs.at(0)}, {x}, {onnx_attr("perm", std::vector<int64_t>{1, 0, 2})});
  // Parameter p in PyTorch's layout with its gate blocks (rows of `block` floats) in ONNX's order.
  const auto reordered = [&](size_t p, int64_t block, std::vector<float>& out) {
    const ParamSpec spec = param_specs().at(p);
    std::vector<float> torch(size_t(spec.checkpoint_shape.numel()));
    to_checkpoint_layout(p, a.params.at(p), torch.data());
    for (int64_t g : onnx_order) out.insert(out.end(), torch.begin() + g * block, torch.begin() + (g + 1) * block);
  };
  size_t p = 0;
  for (int l = 0; l < options_.layers; ++l) {
    const int64_t in = layer_input(l);
    std::vector<float> w, r, b;
    for (int64_t d = 0; d < dirs; ++d, p += 4) {
      reordered(p, hidden * in, w);
      reordered(p + 1, hidden * hidden, r);
      reordered(p + 2, hidden, b);  // ONNX's B per direction: W's bias, then R's
      std::vector<float> rb;
      reordered(p + 3, hidden, rb);
      b.insert(b.end(), rb.begin(), rb.end());
    }
    const std::string layer = prefix + "l" + std::to_string(l) + "/", y = layer + "Y", mid = layer + "batch_minor";
    std::vector<OnnxAttribute> attrs{onnx_attr("hidden_size", hidden),
                                     onnx_attr("direction", dirs == 2 ? "bidirectional" : "forward")};
    if (!lstm) attrs.push_back(onnx_attr("linear_before_reset", int64_t{1}));
    graph.add_node(lstm ? "LSTM" : "GRU",
                   {x, graph.add_initializer(layer + "W", {dirs, gates * hidden, in}, w.data()),
                    graph.add_initializer(layer + "R", {dirs, gates * hidden, hidden}, r.data()),
                    graph.add_initializer(layer + "B", {dirs, 2 * gates * hidden}, b.data()), a.lengths},
                   {y}, attrs);
    graph.add_node("Transpose", {y}, {mid}, {onnx_attr("perm", std::vector<int64_t>{0, 2, 1, 3})});
    x = layer + "output";
    graph.add_node("Reshape", {mid, graph.add_int64_initializer(layer + "output_shape", {0, 0, -1})}, {x});
  }
  graph.add_node("Transpose", {x}, {a.output}, {onnx_attr("perm", std::vector<int64_t>{1, 0, 2})});
  return a.output;
}

}  // namespace graft
