// Head grafting: a new top for a backbone, from a spec such as
//   "flatten,dense:1024,relu,dropout:0.5,dense:N"     (the reference recipe's head)
//   "gap,dense:N"                                      (ResNet-style)
// Tokens, comma-separated (spaces around them ignored):
//   flatten        [N, H, W, C] -> [N, H*W*C] (a dense after it matches PyTorch's CHW order)
//   gap            global average pool, [N, H, W, C] -> [N, C]
//   dense:K        Linear with K outputs; K a positive integer or N (the number of classes)
//   relu
//   dropout:P      P in [0, 1)
//   bn             batch norm over the last dimension (BatchNorm1d after a dense,
//                  BatchNorm2d before flatten/gap)
// The head's nodes are named <prefix>.0, <prefix>.1, ... in token order, PyTorch Sequential
// style, so parameters are "head.1.weight", "head.1.bias". The head must end with a
// [N, K] output (the logits).
#pragma once
#include <string>
#include <vector>

#include "runtime/model.h"

namespace graft {

inline constexpr int kMaxHeadWidth = 1 << 16;

enum class HeadOp { Flatten, GlobalAvgPool, Dense, ReLU, Dropout, BatchNorm };

struct HeadLayerSpec {
  HeadOp op = HeadOp::ReLU;
  int units = 0;                   // dense: output features (when not the class count)
  bool units_are_classes = false;  // dense:N
  float rate = 0.0f;               // dropout
  std::string token;               // as written
  int position = 0;                // 1-based token index, for messages
};

// Throws graft::Error naming the spec, the token and its position on any syntax error.
std::vector<HeadLayerSpec> parse_head(const std::string& spec);

// Appends the head after the model's current last node, or on the model's input when it has
// none (a head alone, for cached features), before Model::finalize, and
// returns the index of its last node. Throws naming the token when a layer does not fit
// what precedes it (a dense after a 4-D activation without flatten/gap, a head that does
// not end with [N, K]).
int graft_head(Model& model, const std::vector<HeadLayerSpec>& head, int num_classes,
               const std::string& prefix = "head");

}  // namespace graft
