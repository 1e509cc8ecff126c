// The frozen prefix: where it ends, and whether to run it in chunks.
#include "runtime/frozen_prefix.h"

#include <algorithm>

#include "base/error.h"
#include "runtime/human_bytes.h"

namespace graft {

std::string training_randomness(const Model& model, int n) {
  const Node& node = model.nodes()[size_t(n)];
  const std::string why = node.layer->training_randomness();
  return why.empty() ? "" : "'" + node.name + "' " + why;
}

FeatureCut find_feature_cut(const Model& model, const std::vector<bool>& frozen) {
  const int N = model.num_nodes();
  auto is_frozen = [&](int n) { return size_t(n) < frozen.size() && frozen[size_t(n)]; };
  FeatureCut cut;
  bool any_frozen = false;
  for (int n = 0; n < N; ++n) any_frozen = any_frozen || (is_frozen(n) && model.node_param_count(n) > 0);
  if (!any_frozen) {
    cut.why_not = "no layer is frozen, so there is no frozen prefix (freeze the base with --freeze)";
    return cut;
  }
  // The frozen, deterministic prefix: 0 .. prefix.
  int prefix = -1;
  std::string stop;  // what ends it
  bool stop_is_random = false;
  for (int n = 0; n < N; ++n) {
    const std::string& name = model.nodes()[size_t(n)].name;
    if (model.node_param_count(n) > 0 && !is_frozen(n)) {
      stop = "'" + name + "' is trainable";
      break;
    }
    if (std::string r = training_randomness(model, n); !r.empty()) {
      stop = r;
      stop_is_random = true;
      break;
    }
    prefix = n;
  }
  if (prefix == N - 1) {
    cut.why_not = "every layer is frozen: there is nothing to train";
    return cut;
  }
  if (prefix < 0) {
    cut.why_not = "the first layer, " + stop + ", so there is no frozen prefix";
    return cut;
  }
  // Earlier cuts until one tensor crosses; remember what ruled out the last frozen node.
  std::string crossing;
  for (int c = prefix; c >= 0; --c) {
    bool has_work = false;  // caching only parameter-free layers saves next to nothing
    for (int n = 0; n <= c; ++n) has_work = has_work || model.node_param_count(n) > 0;
    if (!has_work) break;
    std::string across;
    for (int n = c + 1; n < N && across.empty(); ++n)
      for (int i : model.nodes()[size_t(n)].inputs)
        if (i != c && i <= c) {
          across = "'" + model.nodes()[size_t(n)].name + "' reads " +
                   (i == kModelInput ? std::string("the model input") : "'" + model.nodes()[size_t(i)].name + "'");
          break;
        }
    if (across.empty()) {
      cut.node = c;
      if (stop_is_random) cut.note = "it stops before " + stop;
      if (c < prefix)
        cut.note += (cut.note.empty() ? "" : "; ") + std::string("the frozen layers go on to '") +
                    model.nodes()[size_t(prefix)].name + "', but " + crossing + " across any later cut";
      return cut;
    }
    if (crossing.empty()) crossing = across;
  }
  if (crossing.empty())
    cut.why_not = "no layer with parameters comes before " + stop + ", so the frozen prefix does no work";
  else
    cut.why_not = "no single tensor leads from the frozen layers to the rest: " + crossing +
                  " from inside them (a residual connection across the cut)";
  return cut;
}

PrefixChunkMode parse_prefix_chunk_mode(const std::string& text) {
  if (text == "auto") return {PrefixChunkMode::Auto, 0};
  if (text == "off") return {PrefixChunkMode::Off, 0};
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || n < 1)
    fail("--frozen-chunk '", text, "': expected auto, off or a number of examples (at least 1)");
  return {PrefixChunkMode::Examples, int64_t(n)};
}

size_t prefix_pair_bytes_per_example(const Model& model, int through) {
  const std::vector<Shape> shapes = model.infer_shapes(1);
  size_t most = 0;
  for (int n = 0; n <= through; ++n) {
    size_t floats = size_t(shapes[size_t(n)].numel());
    for (int i : model.nodes()[size_t(n)].inputs)
      floats += size_t(i == kModelInput ? model.sample_shape().numel() : shapes[size_t(i)].numel());
    most = std::max(most, floats * sizeof(float));
  }
  return most;
}

PrefixChunking decide_prefix_chunking(const PrefixChunkMode& mode, const Model& model,
                                      const std::vector<bool>& frozen, int64_t batch) {
  PrefixChunking d;
  if (mode.kind == PrefixChunkMode::Off) return d;
  const FeatureCut cut = find_feature_cut(model, frozen);
  if (cut.node < 0) {
    if (mode.kind == PrefixChunkMode::Examples)
      fail("--frozen-chunk ", mode.examples, ": there is no frozen prefix to run in chunks: ", cut.why_not,
           ". Use --frozen-chunk off (or auto, which falls back by itself)");
    return d;
  }
  const size_t pair = prefix_pair_bytes_per_example(model, cut.node);
  int64_t chunk = 0;
  if (mode.kind == PrefixChunkMode::Examples) {
    chunk = mode.examples;
  } else {
    if (pair * size_t(batch) <= kAutoChunkBytes) return d;  // small enough as it is
    const int64_t pieces = (batch + kAutoChunkExamples - 1) / kAutoChunkExamples;
    chunk = (batch + pieces - 1) / pieces;  // equal chunks
  }
  if (chunk >= batch) return d;  // one chunk is the whole batch
  d.through = cut.node;
  d.chunk = chunk;
  d.line = detail::concat("frozen chunks: the layers up to '", model.nodes()[size_t(cut.node)].name, "' run ", chunk,
                          " examples at a time (their largest activations: ", human_bytes(pair * size_t(chunk)),
                          " instead of ", human_bytes(pair * size_t(batch)), "). --frozen-chunk off turns it off");
  return d;
}

}  // namespace graft
