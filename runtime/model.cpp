// Model construction, shape inference, parameter layout and initialisation.
#include "runtime/model.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <utility>

#include "kernels/common/elementwise.h"
#include "runtime/backend_registry.h"
#include "base/error.h"

namespace graft {

Model::Model(std::string architecture, Shape sample_shape, MemoryPool& pool)
    : architecture_(std::move(architecture)), sample_shape_(std::move(sample_shape)), pool_(&pool) {}

int Model::add(LayerPtr layer, std::vector<int> inputs) {
  GRAFT_ASSERT(!finalized_, "add() after finalize()");
  if (find_node(layer->name()) >= 0) fail("model ", architecture_, ": two layers are named '", layer->name(), "'");
  if (inputs.empty()) inputs.push_back(nodes_.empty() ? kModelInput : num_nodes() - 1);
  for (int i : inputs) GRAFT_ASSERT(i == kModelInput || (i >= 0 && i < num_nodes()), "inputs must come earlier");
  GRAFT_ASSERT(static_cast<int>(inputs.size()) == layer->num_inputs(), "input count of ", layer->name());
  nodes_.push_back(Node{layer->name(), std::move(layer), std::move(inputs)});
  return num_nodes() - 1;
}

std::vector<Shape> Model::node_input_shapes(int n, const std::vector<Shape>& shapes, int64_t batch) const {
  std::vector<Shape> in;
  for (int i : nodes_[n].inputs) {
    if (i == kModelInput) {
      std::vector<int64_t> d{batch};
      d.insert(d.end(), sample_shape_.dims.begin(), sample_shape_.dims.end());
      in.emplace_back(d);
    } else {
      in.push_back(shapes[i]);
    }
  }
  return in;
}

std::vector<Shape> Model::infer_shapes(int64_t batch) const {
  std::vector<Shape> shapes(nodes_.size());
  for (int n = 0; n < num_nodes(); ++n) shapes[n] = nodes_[n].layer->output_shape(node_input_shapes(n, shapes, batch));
  return shapes;
}

void Model::finalize(uint64_t seed) {
  GRAFT_ASSERT(!finalized_ && !nodes_.empty(), "finalize() once, on a non-empty model");
  const auto shapes = infer_shapes(1);
  // Per node: the [1, H, W, C] shape whose flattening its output is (a flatten's input,
  // carried through pass-through layers), or none; the next layer is told.
  std::vector<Shape> flattened_from(nodes_.size());
  for (int n = 0; n < num_nodes(); ++n) {
    Layer& layer = *nodes_[n].layer;
    const int src = nodes_[n].inputs[0];
    const Shape from = src == kModelInput || layer.num_inputs() != 1 ? Shape{} : flattened_from[size_t(src)];
    if (from.rank() == 4) layer.bind_flattened_input(int(from[1]), int(from[2]), int(from[3]));
    if (layer.layout_role() == LayoutRole::Flatten) {
      const Shape in = node_input_shapes(n, shapes, 1)[0];
      if (in.rank() == 4) flattened_from[size_t(n)] = in;
    } else if (layer.layout_role() == LayoutRole::PassThrough) {
      flattened_from[size_t(n)] = from;
    }
    const auto specs = nodes_[n].layer->param_specs();
    for (size_t i = 0; i < specs.size(); ++i) {
      params_.push_back(ParamInfo{nodes_[n].name + "." + specs[i].name, n, static_cast<int>(i), total_params_, specs[i]});
      // 64-float alignment keeps every tensor's start cache-line (and vector) aligned.
      total_params_ += (specs[i].shape.numel() + 63) / 64 * 64;
    }
  }
  params_buffer_ = PoolBuffer(*pool_, static_cast<size_t>(total_params_) * sizeof(float), "parameters");
  float* host = params_buffer_.floats();
  if (on_device()) {
    host_mirror_.assign(size_t(total_params_), 0.0f);
    host = host_mirror_.data();
  }
  std::fill(host, host + total_params_, 0.0f);
  finalized_ = true;
  for (int n = 0; n < num_nodes(); ++n) initialize_node(n, seed, host);
  upload_params();
}

float* Model::host_params() {
  if (!on_device()) return params_buffer_.floats();
  std::as_const(*this).host_params();
  return host_mirror_.data();
}

const float* Model::host_params() const {
  if (!on_device()) return params_buffer_.floats();
  host_mirror_.resize(size_t(total_params_));
  std::unique_ptr<Ops> ops;
  ops_for(*pool_, false, KernelChoice::Native, ops).download(host_mirror_.data(), params_buffer_.get(),
                                                             params_buffer_.bytes());
  return host_mirror_.data();
}

void Model::upload_params() {
  if (!on_device()) return;
  std::unique_ptr<Ops> ops;
  Ops& o = ops_for(*pool_, false, KernelChoice::Native, ops);
  o.upload(params_buffer_.get(), host_mirror_.data(), params_buffer_.bytes());
  o.synchronize();
}

void Model::reinitialize_node(int n, uint64_t seed) {
  float* host = host_params();
  initialize_node(n, seed, host);
  upload_params();
}

void Model::initialize_node(int n, uint64_t seed, float* host) {
  for (size_t p : node_params(n)) {
    const ParamSpec& s = params_[p].spec;
    float* data = host + params_[p].offset;
    const int64_t count = s.shape.numel();
    const float bound = 1.0f / std::sqrt(static_cast<float>(s.fan_in));
    for (int64_t i = 0; i < count; ++i) {
      switch (s.init) {
        case ParamInit::UniformFanIn:
          data[i] = (2.0f * math::random_uniform(seed, 0x1000 + p, static_cast<uint64_t>(i)) - 1.0f) * bound;
          break;
        case ParamInit::Normal: {  // Box-Muller over two counter-based uniforms
          const double u1 = 1.0 - math::random_uniform(seed, 0x1000 + p, 2 * static_cast<uint64_t>(i));  // (0, 1]
          const double u2 = math::random_uniform(seed, 0x1000 + p, 2 * static_cast<uint64_t>(i) + 1);
          data[i] = static_cast<float>(s.std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
          break;
        }
        case ParamInit::Zeros: data[i] = 0.0f; break;
        case ParamInit::Ones: data[i] = 1.0f; break;
      }
    }
    if (s.zero_row >= 0) {  // nn.Embedding's padding_idx row starts at zero
      const int64_t row = count / s.shape[0];
      std::fill(data + s.zero_row * row, data + (s.zero_row + 1) * row, 0.0f);
    }
  }
}

int Model::num_outputs() const {
  const Shape s = infer_shapes(1).back();
  return static_cast<int>(s.numel());
}

int Model::find_node(const std::string& name) const {
  for (int n = 0; n < num_nodes(); ++n)
    if (nodes_[n].name == name) return n;
  return -1;
}

std::vector<int> Model::node_params(int n) const {
  std::vector<int> out;
  for (size_t p = 0; p < params_.size(); ++p)
    if (params_[p].node == n) out.push_back(static_cast<int>(p));
  return out;
}

int64_t Model::node_param_count(int n) const {
  int64_t c = 0;
  for (int p : node_params(n))
    if (!params_[p].spec.buffer) c += params_[p].spec.shape.numel();
  return c;
}

int64_t Model::parameter_count() const {
  int64_t c = 0;
  for (const auto& p : params_)
    if (!p.spec.buffer) c += p.spec.shape.numel();
  return c;
}

namespace {

std::string layers_with_parameters(const Model& m) {
  std::string names;
  for (int n = 0; n < m.num_nodes(); ++n)
    if (m.node_param_count(n)) names += (names.empty() ? "" : ", ") + m.nodes()[n].name;
  return names;
}

// One end of a range: a node name, or a node index; empty: the first or the last node.
int range_end(const Model& m, const std::string& pattern, const std::string& flag, const std::string& end,
              int if_empty) {
  if (end.empty()) return if_empty;
  if (end.find_first_not_of("0123456789") == std::string::npos) {
    const long long i = end.size() <= 9 ? std::stoll(end) : -1;
    if (i < 0 || i >= m.num_nodes())
      fail(flag, " '", pattern, "': ", m.architecture(), " has nodes 0 to ", m.num_nodes() - 1, ", not ", end);
    return static_cast<int>(i);
  }
  const int n = m.find_node(end);
  if (n < 0)
    fail(flag, " '", pattern, "': ", m.architecture(), " has no layer named '", end,
         "'; its layers with parameters are: ", layers_with_parameters(m), " (graft info lists every node)");
  return n;
}

}  // namespace

std::vector<bool> select_nodes(const Model& m, const std::string& pattern, const std::string& flag) {
  std::vector<bool> selected(m.nodes().size(), false);
  const auto dots = pattern.find("..");
  if (dots == std::string::npos) {
    for (int n = 0; n < m.num_nodes(); ++n) selected[size_t(n)] = fnmatch(pattern.c_str(), m.nodes()[n].name.c_str(), 0) == 0;
    return selected;
  }
  const int first = range_end(m, pattern, flag, pattern.substr(0, dots), 0);
  const int last = range_end(m, pattern, flag, pattern.substr(dots + 2), m.num_nodes() - 1);
  if (first > last)
    fail(flag, " '", pattern, "': '", m.nodes()[first].name, "' comes after '", m.nodes()[last].name, "' in ",
         m.architecture(), "; give the earlier layer first");
  for (int n = first; n <= last; ++n) selected[size_t(n)] = true;
  return selected;
}

std::vector<bool> resolve_freeze_patterns(const Model& m, const std::vector<std::string>& patterns) {
  std::vector<bool> frozen(m.nodes().size(), false);
  for (const auto& pattern : patterns) {
    const auto selected = select_nodes(m, pattern, "--freeze");
    bool matched = false;
    for (int n = 0; n < m.num_nodes(); ++n)
      if (selected[size_t(n)] && m.node_param_count(n) > 0) frozen[size_t(n)] = matched = true;
    if (!matched)
      fail("--freeze '", pattern, "' matches no layer with parameters in ", m.architecture(),
           "; its layers with parameters are: ", layers_with_parameters(m));
  }
  return frozen;
}

}  // namespace graft
