// OnnxGraph: an ONNX model (opset 17) built node by node, with its weights as initializers,
// and written as a ModelProto (runtime/protobuf.h). Layers add their inference form
// through Layer::export_onnx; runtime/onnx/export.h walks a model and names the tensors.
// ONNX tensors are NCHW: a layer is handed graft's NHWC shapes and emits the NCHW op.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "runtime/atomic_file.h"
#include "runtime/layer.h"
#include "runtime/protobuf.h"

namespace graft {

// What Layer::export_onnx sees: the ONNX names of its inputs (NCHW for 4-D activations,
// [N, F] after a flatten, [N, steps, F] in a sequence model), graft's shapes of them (NHWC,
// batch 1), the name its output should take, and its parameters in graft's internal layout
// (host memory), every ParamSpec in order. In a sequence model `lengths` names the graph's
// int32 [N] input of each example's steps.
struct OnnxNodeArgs {
  std::vector<std::string> inputs;
  std::string lengths;
  std::vector<Shape> input_shapes;
  std::string output;
  Shape output_shape;
  std::vector<const float*> params;
};

struct OnnxAttribute {
  enum class Kind { Int, Ints, Float, String } kind = Kind::Int;
  std::string name;
  int64_t i = 0;
  std::vector<int64_t> ints;
  float f = 0;
  std::string s;
};
inline OnnxAttribute onnx_attr(std::string name, int64_t v) { return {OnnxAttribute::Kind::Int, std::move(name), v, {}, 0, {}}; }
inline OnnxAttribute onnx_attr(std::string name, std::vector<int64_t> v) {
  return {OnnxAttribute::Kind::Ints, std::move(name), 0, std::move(v), 0, {}};
}
inline OnnxAttribute onnx_attr(std::string name, float v) { return {OnnxAttribute::Kind::Float, std::move(name), 0, {}, v, {}}; }
inline OnnxAttribute onnx_attr(std::string name, const char* v) {
  return {OnnxAttribute::Kind::String, std::move(name), 0, {}, 0, v};
}

class OnnxGraph {
 public:
  static constexpr int64_t kOpset = 17;
  static constexpr int64_t kIrVersion = 8;  // the IR of opset 17 (ONNX 1.12)
  static constexpr int64_t kBatch = -1;      // a dimension named "N", any batch size

  // Adds one node; each output name must be new (ONNX graphs are single-assignment).
  void add_node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                const std::vector<OnnxAttribute>& attributes = {}) {
    ProtoWriter n;
    for (const auto& in : inputs) {
      if (!defined_.count(in)) fail("ONNX export: node ", outputs.at(0), " (", op, ") reads ", in, ", which nothing defines");
      n.bytes_field(1, in);
    }
    for (const auto& out : outputs) {
      define(out);
      n.bytes_field(2, out);
    }
    n.bytes_field(3, outputs.at(0));
    n.bytes_field(4, op);
    for (const auto& a : attributes) n.message_field(5, attribute(a));
    graph_.message_field(1, n);
  }

  // A float32 initializer `name` with `dims` (row-major), returning its name.
  std::string add_initializer(const std::string& name, const std::vector<int64_t>& dims, const float* values) {
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    return add_tensor(name, dims, /*FLOAT*/ 1, std::string_view(reinterpret_cast<const char*>(values), size_t(count) * 4));
  }
  std::string add_int64_initializer(const std::string& name, const std::vector<int64_t>& values) {
    return add_tensor(name, {int64_t(values.size())}, /*INT64*/ 7,
                      std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * 8));
  }
  // Parameter `index` of `layer` in PyTorch's layout (Layer::to_checkpoint_layout), named
  // as in the checkpoint ("features.0.weight"). `internal` is graft's layout, on the host.
  std::string add_parameter(const Layer& layer, size_t index, const float* internal) {
    const ParamSpec spec = layer.param_specs().at(index);
    std::vector<float> external(size_t(spec.checkpoint_shape.numel()));
    layer.to_checkpoint_layout(index, internal, external.data());
    std::vector<int64_t> dims;
    for (int i = 0; i < spec.checkpoint_shape.rank(); ++i) dims.push_back(spec.checkpoint_shape[i]);
    return add_initializer(layer.name() + "." + spec.name, dims, external.data());
  }

  // Graph inputs and outputs: float32 (or `elem_type`, ONNX's TensorProto.DataType) of
  // `dims`, kBatch for the batch dimension.
  static constexpr int kFloat = 1, kInt32 = 6, kInt64 = 7;
  void add_input(const std::string& name, const std::vector<int64_t>& dims, int elem_type = kFloat) {
    define(name);
    graph_.message_field(11, value_info(name, dims, elem_type));
  }
  void add_output(const std::string& name, const std::vector<int64_t>& dims) {
    if (!defined_.count(name)) fail("ONNX export: the output ", name, " is not computed by the graph");
    graph_.message_field(12, value_info(name, dims));
  }
  bool defines(const std::string& name) const { return defined_.count(name) > 0; }

  void add_metadata(const std::string& key, const std::string& value) { metadata_.emplace_back(key, value); }
  void set_doc(std::string doc) { doc_ = std::move(doc); }

  // The ModelProto in pieces (header, graph, metadata) that concatenate to the file, so a
  // large model's weights are not copied once more to be written.
  std::vector<std::string> serialize(const std::string& graph_name, const std::string& producer_version) const {
    ProtoWriter head;
    head.int_field(1, kIrVersion);
    head.bytes_field(2, "graft");
    head.bytes_field(3, producer_version);
    if (!doc_.empty()) head.bytes_field(6, doc_);
    ProtoWriter opset;
    opset.bytes_field(1, "");  // the default domain, ai.onnx
    opset.int_field(2, kOpset);
    head.message_field(8, opset);
    ProtoWriter name;
    name.bytes_field(2, graph_name);
    // The graph field: its tag and length, its name, then its body as the second piece.
    const std::string& body = body_within_limit();
    head.field_header(7, name.bytes().size() + body.size());
    const std::string prefix = head.bytes() + name.bytes();
    ProtoWriter tail;
    for (const auto& [k, v] : metadata_) {
      ProtoWriter entry;
      entry.bytes_field(1, k);
      entry.bytes_field(2, v);
      tail.message_field(14, entry);
    }
    return {prefix, body, tail.bytes()};
  }
  void write(const std::string& path, const std::string& graph_name, const std::string& producer_version) const {
    const auto pieces = serialize(graph_name, producer_version);
    write_file_atomic(path, {pieces[0], pieces[1], pieces[2]});
  }

 private:
  // A protobuf message is at most 2 GB; onnx and onnxruntime refuse a larger file.
  const std::string& body_within_limit() const {
    if (graph_.bytes().size() >= (size_t{1} << 31) - 4096)
      fail("ONNX export: the graph takes ", graph_.bytes().size(), " bytes, over protobuf's 2 GB limit of one ONNX file");
    return graph_.bytes();
  }
  void define(const std::string& name) {
    if (!defined_.insert(name).second) fail("ONNX export: the tensor name ", name, " is used twice");
  }
  std::string add_tensor(const std::string& name, const std::vector<int64_t>& dims, int data_type, std::string_view raw) {
    define(name);
    ProtoWriter t;
    for (int64_t d : dims) t.int_field(1, d);
    t.int_field(2, data_type);
    t.bytes_field(8, name);
    t.bytes_field(9, raw);  // little-endian, as ONNX's raw_data is
    graph_.message_field(5, t);
    return name;
  }
  static ProtoWriter attribute(const OnnxAttribute& a) {
    ProtoWriter w;
    w.bytes_field(1, a.name);
    switch (a.kind) {
      case OnnxAttribute::Kind::Float: w.float_field(2, a.f); w.int_field(20, 1); break;
      case OnnxAttribute::Kind::Int: w.int_field(3, a.i); w.int_field(20, 2); break;
      case OnnxAttribute::Kind::Ints:
        for (int64_t v : a.ints) w.int_field(8, v);
        w.int_field(20, 7);
        break;
      case OnnxAttribute::Kind::String: w.bytes_field(4, a.s); w.int_field(20, 3); break;
    }
    return w;
  }
  static ProtoWriter value_info(const std::string& name, const std::vector<int64_t>& dims, int elem_type = kFloat) {
    ProtoWriter shape;
    for (int64_t d : dims) {
      ProtoWriter dim;
      if (d == kBatch)
        dim.bytes_field(2, "N");
      else
        dim.int_field(1, d);
      shape.message_field(1, dim);
    }
    ProtoWriter tensor;
    tensor.int_field(1, elem_type);
    tensor.message_field(2, shape);
    ProtoWriter type;
    type.message_field(1, tensor);
    ProtoWriter info;
    info.bytes_field(1, name);
    info.message_field(2, type);
    return info;
  }
  ProtoWriter graph_;
  std::set<std::string> defined_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::string doc_;
};

}  // namespace graft
