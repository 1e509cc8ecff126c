// Per-element math of activations, dropout and the counter-based RNG, shared by the CPU
// and CUDA kernels.
#pragma once
#include <cstdint>

#include "kernels/common/hd.h"

namespace graft::math {

GRAFT_HD float relu(float x) { return x > 0.0f ? x : 0.0f; }
// ReLU's gradient read from its output: y > 0 exactly where x > 0.
GRAFT_HD float relu_grad_from_output(float y, float dy) { return y > 0.0f ? dy : 0.0f; }

// Counter-based random numbers: the value for (seed, stream, index) is a pure function, so a
// replayed or resumed step draws the same numbers on every backend. splitmix64 finalizer.
GRAFT_HD uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
GRAFT_HD uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  return mix64(mix64(seed ^ 0x9e3779b97f4a7c15ULL) ^ mix64(stream * 0xd1b54a32d192ed03ULL + index));
}
// Uniform in [0, 1) with 24 bits of resolution.
GRAFT_HD float random_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(random_bits(seed, stream, index) >> 40) * (1.0f / 16777216.0f);
}

// A random layer's stream at a training step: the step count and the layer's node index,
// so every layer draws its own numbers at every step (layers read the step from memory when
// a step graph is replayed: ExecContext::step_counter).
GRAFT_HD uint64_t layer_stream(int64_t step, int node) {
  return static_cast<uint64_t>(step) << 16 ^ static_cast<uint64_t>(node);
}

// Inverted dropout: an element is kept with probability 1-p and scaled by 1/(1-p).
// The mask is recomputed in backward from the same counter, never stored.
GRAFT_HD float dropout_scale(float p, uint64_t seed, uint64_t stream, uint64_t index) {
  return random_uniform(seed, stream, index) < p ? 0.0f : 1.0f / (1.0f - p);
}

}  // namespace graft::math
