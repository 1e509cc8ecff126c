// The frozen prefix: the layers at the bottom of a transfer-learning model that get no
// gradient and give the same output for the same input. Two features stand on it:
// feature caching (runtime/feature_cache.h: run it once per dataset) and chunking (run it
// a few examples at a time, so its activations take a fraction of a full batch's memory;
// the executor's chunk_through).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace graft {

// Why node n gives different outputs for the same input in training (dropout with p > 0,
// batch norm with policy train: Layer::training_randomness), or "".
std::string training_randomness(const Model& model, int n);

// Where a model can be cut: the last node such that every node up to and including it is
// frozen (no trainable parameters) and deterministic in training (training_randomness is
// empty: no dropout with p > 0, no batch norm with policy train), and every later node reads only later nodes or the cut
// itself (one tensor crosses; a residual connection across it rules a node out).
struct FeatureCut {
  int node = -1;        // -1: no cut; why_not says why
  std::string why_not;  // one sentence
  std::string note;     // when the cut stops before the end of the frozen layers: why
};
FeatureCut find_feature_cut(const Model& model, const std::vector<bool>& frozen);

// --frozen-chunk: auto, off, or a number of examples.
struct PrefixChunkMode {
  enum Kind { Auto, Off, Examples } kind = Auto;
  int64_t examples = 0;  // Examples: how many per chunk
};
PrefixChunkMode parse_prefix_chunk_mode(const std::string& text);  // errors name --frozen-chunk

// Auto chunks when the frozen prefix's activations would take more than this at the full
// batch, in chunks of at most kAutoChunkExamples (on a GPU, big enough to keep it busy).
constexpr size_t kAutoChunkBytes = size_t{256} << 20;
constexpr int64_t kAutoChunkExamples = 16;

struct PrefixChunking {
  int through = -1;    // the last node run in chunks (the cut); -1: no chunking
  int64_t chunk = 0;   // examples per chunk
  std::string line;    // what to tell the user (empty when there is nothing to say)
};
// Whether a training plan of `batch` runs its frozen prefix in chunks. Off: never. Auto:
// when a cut exists and the prefix's largest input+output pair at the full batch exceeds
// kAutoChunkBytes: equal chunks of at most kAutoChunkExamples. Examples: that many per
// chunk; a graft::Error names --frozen-chunk and the reason when there is no cut.
PrefixChunking decide_prefix_chunking(const PrefixChunkMode& mode, const Model& model,
                                      const std::vector<bool>& frozen, int64_t batch);

// Bytes of the largest input+output pair among nodes 0..through, per example.
size_t prefix_pair_bytes_per_example(const Model& model, int through);

}  // namespace graft
