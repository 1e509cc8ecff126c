// Parsing and building sequence models (the grammar is in sequence_spec.h).
#include "layers/sequence_spec.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <map>

#include "base/error.h"
#include "layers/dense.h"
#include "layers/embedding.h"
#include "layers/head.h"
#include "layers/recurrent.h"
#include "layers/sequence_pool.h"
#include "layers/simple_layers.h"

namespace graft {

namespace {

enum class SeqOp { Embedding, Recurrent, Pool, Dense, ReLU, Dropout };

struct SeqLayer {
  SeqOp op = SeqOp::ReLU;
  int vocab = 0, dim = 0, padding_idx = -1;  // embedding
  RecurrentOptions rnn;                      // lstm, gru
  SequencePoolMode mode = SequencePoolMode::Last;
  int units = 0;                             // dense
  bool units_are_classes = false;
  float rate = 0;                            // dropout
  bool top = false;                          // after the pool
};

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    out.push_back(trim(s.substr(start, at == std::string::npos ? std::string::npos : at - start)));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

// A whole positive (or, with allow_zero, non-negative) integer below 2^24, or -1.
int parse_int(const std::string& s, bool allow_zero = false) {
  int v = -1;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < (allow_zero ? 0 : 1) || v >= (1 << 24)) return -1;
  return v;
}

constexpr const char* kTokens =
    "sequence tokens are embedding:VxD, pad:P, lstm:H[xL], gru:H[xL], bi, dropout:P, last, mean, flatten, dense:K|N, relu "
    "(e.g. 'lstm:128x2,last,dense:N'; docs/architecture.md, layers/sequence_spec.h)";

std::vector<SeqLayer> parse(const std::string& spec) {
  const std::vector<std::string> tokens = split(spec, ',');
  std::vector<SeqLayer> out;
  bool pooled = false;
  int last_rnn = -1;  // index in out of the latest lstm/gru
  std::string prev;   // the previous token's name
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& token = tokens[i];
    const int pos = int(i) + 1;
    auto error = [&](const std::string& why) { fail("--model '", spec, "': token ", pos, " '", token, "' ", why, "; ", kTokens); };
    const size_t colon = token.find(':');
    const std::string name = token.substr(0, colon);
    const bool has_arg = colon != std::string::npos;
    const std::string arg = has_arg ? trim(token.substr(colon + 1)) : std::string();
    if (token.empty()) error("is empty");
    auto no_arg = [&] {
      if (has_arg) error("takes no argument");
    };
    SeqLayer l;
    l.top = pooled;
    if (name == "embedding") {
      if (i != 0) error("must come first: an embedding reads the input's token ids");
      const auto vd = split(arg, 'x');
      if (!has_arg || vd.size() != 2 || parse_int(vd[0]) < 0 || parse_int(vd[1]) < 0)
        error("needs a vocabulary and a size: embedding:VxD, e.g. embedding:20000x64");
      l.op = SeqOp::Embedding;
      l.vocab = parse_int(vd[0]);
      l.dim = parse_int(vd[1]);
    } else if (name == "pad") {
      if (prev != "embedding") error("follows the embedding it sets the padding index of");
      const int p = has_arg ? parse_int(arg, true) : -1;
      if (p < 0 || p >= out.back().vocab)
        error("needs a token id in the vocabulary 0.." + std::to_string(out.back().vocab - 1) + ": pad:P");
      out.back().padding_idx = p;
      prev = name;
      continue;
    } else if (name == "lstm" || name == "gru") {
      if (pooled) error("comes after the pool: recurrent layers come before last, mean or flatten");
      const auto hl = split(arg, 'x');
      if (!has_arg || hl.size() > 2 || parse_int(hl[0]) < 0 || (hl.size() == 2 && parse_int(hl[1]) < 0))
        error("needs a hidden size and optionally a layer count: " + name + ":H or " + name + ":HxL, e.g. " + name + ":128x2");
      l.op = SeqOp::Recurrent;
      l.rnn.cell = name == "lstm" ? RnnCell::LSTM : RnnCell::GRU;
      l.rnn.hidden = parse_int(hl[0]);
      l.rnn.layers = hl.size() == 2 ? parse_int(hl[1]) : 1;
      if (l.rnn.hidden > (1 << 16)) error("is wider than 65536 units");
      if (l.rnn.layers > 64) error("has more than 64 layers");
      last_rnn = int(out.size());
    } else if (name == "bi") {
      no_arg();
      if (prev != "lstm" && prev != "gru") error("follows the lstm or gru it makes bidirectional");
      out.back().rnn.bidirectional = true;
      prev = name;
      continue;
    } else if (name == "dropout") {
      char* end = nullptr;
      const double p = has_arg ? std::strtod(arg.c_str(), &end) : -1;
      if (!has_arg || arg.empty() || end != arg.c_str() + arg.size() || !(p >= 0.0 && p < 1.0))
        error("needs a rate in [0, 1): dropout:P");
      // Right after a stacked recurrent layer: PyTorch's dropout= between its layers.
      if ((prev == "lstm" || prev == "gru" || prev == "bi") && out[size_t(last_rnn)].rnn.layers > 1) {
        out[size_t(last_rnn)].rnn.dropout = float(p);
        prev = "rnn-dropout";
        continue;
      }
      l.op = SeqOp::Dropout;
      l.rate = float(p);
    } else if (name == "last" || name == "mean" || name == "flatten") {
      no_arg();
      if (pooled) error("is a second pool: a sequence is pooled once");
      if (out.empty()) error("has no sequence to pool: put an lstm, gru or embedding before it");
      l.op = SeqOp::Pool;
      l.mode = name == "last" ? SequencePoolMode::Last : name == "mean" ? SequencePoolMode::Mean : SequencePoolMode::Flatten;
      pooled = true;
    } else if (name == "dense") {
      if (!pooled) error("comes before the pool: a dense layer reads [N, features], after last, mean or flatten");
      l.op = SeqOp::Dense;
      if (arg == "N" || arg == "n") {
        l.units_are_classes = true;
      } else {
        l.units = has_arg ? parse_int(arg) : -1;
        if (l.units < 0 || l.units > kMaxHeadWidth) error("needs a size: dense:K (1.." + std::to_string(kMaxHeadWidth) + ") or dense:N");
      }
    } else if (name == "relu") {
      no_arg();
      if (!pooled) error("comes before the pool: relu belongs to the layers after last, mean or flatten");
      l.op = SeqOp::ReLU;
    } else {
      error("is not a known layer");
    }
    out.push_back(l);
    prev = name;
  }
  if (!pooled) fail("--model '", spec, "' has no pool: add last, mean or flatten after the recurrent layers, e.g. 'lstm:128,last,dense:N'");
  return out;
}

const char* base_name(const SeqLayer& l) {
  switch (l.op) {
    case SeqOp::Embedding: return "embedding";
    case SeqOp::Recurrent: return l.rnn.cell == RnnCell::LSTM ? "lstm" : "gru";
    case SeqOp::Pool: return "pool";
    case SeqOp::Dense: return "fc";
    case SeqOp::ReLU: return "relu";
    case SeqOp::Dropout: return "dropout";
  }
  return "";
}

}  // namespace

bool is_sequence_spec(const std::string& architecture) {
  const std::string first = trim(architecture.substr(0, architecture.find(',')));
  const std::string name = first.substr(0, first.find(':'));
  return name == "embedding" || name == "lstm" || name == "gru";
}

bool sequence_spec_fixes_steps(const std::string& architecture) {
  for (const auto& l : parse(architecture))
    if (l.op == SeqOp::Pool && l.mode == SequencePoolMode::Flatten) return true;
  return false;
}

std::vector<std::string> sequence_backbone_patterns(const std::string& architecture) {
  const auto layers = parse(architecture);
  std::map<std::string, int> count;
  for (const auto& l : layers) ++count[base_name(l)];
  std::map<std::string, int> seen;
  std::vector<std::string> names;
  for (const auto& l : layers) {
    const std::string base = base_name(l);
    const int k = ++seen[base];
    if (l.op == SeqOp::Embedding || l.op == SeqOp::Recurrent)
      names.push_back(count[base] > 1 ? base + std::to_string(k) : base);
  }
  return names;
}

std::unique_ptr<Model> build_sequence_model(const ModelSpec& spec, MemoryPool& pool) {
  const auto layers = parse(spec.architecture);
  const auto head = spec.head.empty() ? std::vector<HeadLayerSpec>{} : parse_head(spec.head);
  if (spec.num_classes < 1) fail("model ", spec.architecture, " needs at least one class, got ", spec.num_classes);
  if (spec.width_divisor != 1)
    fail("--width-divisor ", spec.width_divisor, " divides the zoo's image architectures; a sequence spec ('",
         spec.architecture, "') states its sizes itself");
  const Shape& sample = spec.sample_shape;
  if (sample.rank() < 1 || sample.rank() > 3 || sample.numel() < 1)
    fail("model ", spec.architecture, " needs a sequence input [steps, features] (or [H, W, C], a row per step), got ",
         sample.str());
  const bool with_top = head.empty() && spec.include_top;
  if (with_top && (layers.back().op != SeqOp::Dense))
    fail("--model '", spec.architecture, "' ends with '", base_name(layers.back()),
         "': end it with the logits, e.g. '...,last,dense:N'");
  auto m = std::make_unique<Model>(spec.architecture, sample, pool);
  std::map<std::string, int> count, seen;
  for (const auto& l : layers)
    if (!l.top || with_top) ++count[base_name(l)];
  auto shape = [&] {
    if (m->num_nodes() > 0) return m->infer_shapes(1).back();
    std::vector<int64_t> dims{1};
    dims.insert(dims.end(), sample.dims.begin(), sample.dims.end());
    return Shape(dims);
  };
  bool reverse_half = false;  // the sequence so far ends with a bidirectional layer's output
  for (const auto& l : layers) {
    if (l.top && !with_top) break;
    const std::string base = base_name(l);
    const int k = ++seen[base];
    const std::string name = count[base] > 1 ? base + std::to_string(k) : base;
    const Shape in = shape();
    switch (l.op) {
      case SeqOp::Embedding:
        m->add(std::make_unique<Embedding>(name, l.vocab, l.dim, l.padding_idx));
        reverse_half = false;
        break;
      case SeqOp::Recurrent: {
        if (in.rank() < 3)
          fail("--model '", spec.architecture, "': ", base, " needs a sequence [steps, features], but its input is ",
               in.with_batch(1).str(), " (a sample shape of [steps, features] or [H, W, C]; token ids need an embedding first)");
        const int64_t features = in.numel() / (in[0] * in[1]);
        m->add(std::make_unique<Recurrent>(name, int(features), l.rnn));
        reverse_half = l.rnn.bidirectional;
        break;
      }
      case SeqOp::Pool: m->add(std::make_unique<SequencePool>(name, l.mode, reverse_half)); break;
      case SeqOp::Dense:
        m->add(std::make_unique<Dense>(name, int(in[1]), l.units_are_classes ? spec.num_classes : l.units));
        break;
      case SeqOp::ReLU: m->add(std::make_unique<ReLU>(name)); break;
      case SeqOp::Dropout: m->add(std::make_unique<Dropout>(name, l.rate)); break;
    }
  }
  if (!head.empty()) graft_head(*m, head, spec.num_classes);
  m->finalize(spec.seed);
  return m;
}

}  // namespace graft
