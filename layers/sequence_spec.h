// Sequence models by spec: the --model value (ModelSpec::architecture) for recurrent
// networks, comma-separated tokens in order (spaces around them ignored):
//
//   embedding:VxD   token ids -> D features, vocabulary V (first token only; the input is
//                   [steps, 1] ids); `pad:P` right after it: padding_idx P
//   lstm:H[xL]      an nn.LSTM of hidden size H and L layers (default 1); right after it:
//   gru:H[xL]         `bi`         bidirectional
//                     `dropout:P`  with L >= 2: PyTorch's dropout= between its layers;
//                                  with one layer: a dropout on its output (below)
//   last | mean     pool over time: the last step of each sequence, or the mean over its
//                   steps -> [N, F]; or
//   flatten         every step side by side -> [N, steps * F], the steps past a sequence's
//                   length zero (exactly one pool, after the last lstm/gru)
//   dense:K|N       after the pool: a linear layer, K outputs or N = the classes
//   relu            after the pool
//   dropout:P       a dropout layer (nn.Dropout) on the previous output, P in [0, 1)
//
// e.g. "lstm:128x2,last,dense:N" (Fashion-MNIST rows as steps: input [28, 28, 1] is 28
// steps of 28 features), "embedding:20000x64,pad:0,gru:64,bi,dropout:0.2,mean,dense:N".
// Without an embedding the input is [steps, features] (or [H, W, C]: H steps of W*C).
// Nodes are named as a PyTorch module's attributes would be: embedding, lstm or gru, pool,
// fc, relu, dropout; a kind that occurs more than once is numbered from 1 (fc1, fc2), so
// checkpoints hold `lstm.weight_ih_l0`, `fc.weight`... Backbone: everything up to and
// including the pool; top: what follows it (ModelSpec::head replaces it, named head.0...).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/zoo.h"

namespace graft {

// True when `architecture` is a sequence spec (its first token is embedding, lstm or gru).
bool is_sequence_spec(const std::string& architecture);

// True when the spec's parameters depend on the number of steps (its pool is flatten: the
// layer after it reads steps * features), so its data must have the steps it was built for.
bool sequence_spec_fixes_steps(const std::string& architecture);

// Builds the model (see the grammar above); throws graft::Error naming the spec, the token,
// its position and what is expected on any mistake.
std::unique_ptr<Model> build_sequence_model(const ModelSpec& spec, MemoryPool& pool);

// The backbone's node names (embedding, recurrent layers), for resolve_freeze_patterns.
std::vector<std::string> sequence_backbone_patterns(const std::string& architecture);

}  // namespace graft
