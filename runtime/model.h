// Model: a DAG of named layer nodes and the one flat buffer that holds all their
// parameters. Built once; freezing and the training plan live in the Executor, so a model
// can be frozen differently for each stage without being rebuilt.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/layer.h"
#include "runtime/memory_pool.h"

namespace graft {

inline constexpr int kModelInput = -1;

struct Node {
  std::string name;
  LayerPtr layer;
  std::vector<int> inputs;  // node indices, or kModelInput
};

struct ParamInfo {
  std::string name;  // "<node>.<param>", PyTorch's state_dict name
  int node = 0;
  int index = 0;     // within the layer's param_specs()
  int64_t offset = 0;  // in floats, into the flat parameter buffer
  ParamSpec spec;
};

class Model {
 public:
  // `sample_shape` is one input without the batch dimension: [H, W, C].
  Model(std::string architecture, Shape sample_shape, MemoryPool& pool);

  // Adds a node fed by `inputs` (default: the previous node, or the model input); returns its index.
  int add(LayerPtr layer, std::vector<int> inputs = {});
  // Infers shapes, tells the layer after a flatten (directly or through pass-through layers:
  // Layer::layout_role) the flattened shape, allocates the
  // flat parameter buffer and initialises it from `seed`. Call once, after the last add().
  void finalize(uint64_t seed);
  // Draws fresh initial values for the parameters of node `n` (a new head).
  void reinitialize_node(int n, uint64_t seed);

  const std::string& architecture() const { return architecture_; }
  const Shape& sample_shape() const { return sample_shape_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<ParamInfo>& params() const { return params_; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  int output_node() const { return num_nodes() - 1; }
  int num_outputs() const;  // features of the last node's output (classes)
  int find_node(const std::string& name) const;  // -1 when absent
  std::vector<int> node_params(int n) const;     // indices into params()

  // Parameters in the pool's memory (the device's for a device pool).
  float* param_data(size_t i) { return params_buffer_.floats() + params_[i].offset; }
  const float* param_data(size_t i) const { return params_buffer_.floats() + params_[i].offset; }
  float* params_flat() { return params_buffer_.floats(); }
  int64_t total_param_count() const { return total_params_; }
  // The flat parameters readable and writable on the host: the buffer itself for a host
  // pool; for a device pool, a host mirror refreshed from the device by this call. After
  // writing through it, upload_params() puts the mirror on the device (a no-op on the CPU).
  float* host_params();
  const float* host_params() const;
  void upload_params();
  bool on_device() const { return pool_->device() != Device::CPU; }
  int64_t node_param_count(int n) const;   // trainable-kind parameters, buffers excluded
  int64_t parameter_count() const;          // over the model, buffers excluded (torchvision's count)

  // Output shape of every node for a batch of `batch`.
  std::vector<Shape> infer_shapes(int64_t batch) const;
  std::vector<Shape> node_input_shapes(int n, const std::vector<Shape>& shapes, int64_t batch) const;
  MemoryPool& pool() const { return *pool_; }

 private:
  void initialize_node(int n, uint64_t seed, float* host);  // into the host view `host`

  std::string architecture_;
  Shape sample_shape_;
  MemoryPool* pool_;
  std::vector<Node> nodes_;
  std::vector<ParamInfo> params_;
  int64_t total_params_ = 0;
  PoolBuffer params_buffer_;
  mutable std::vector<float> host_mirror_;  // device pools only
  bool finalized_ = false;
};

// The nodes a layer pattern selects, for every flag that names layers (--freeze,
// --init-only, --lr-mult, --bn): a glob on the node name (fnmatch: 'conv*', 'features.*'),
// or a range FROM..TO of nodes in the model's order, both ends included, each a node name
// or a node index, either left out for the first or the last node ('..features.23':
// everything up to VGG16's fourth block; '..14': Keras's layers[:15]). `flag` names the
// pattern in errors (an unknown end, ends in the wrong order).
std::vector<bool> select_nodes(const Model& m, const std::string& pattern, const std::string& flag);

// Which nodes are frozen: the layers with parameters that the patterns select
// (select_nodes). Each pattern must select at least one.
std::vector<bool> resolve_freeze_patterns(const Model& m, const std::vector<std::string>& patterns);

}  // namespace graft
