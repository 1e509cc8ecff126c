// Head parsing and grafting.
#include "layers/head.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "layers/batchnorm.h"
#include "layers/dense.h"
#include "layers/simple_layers.h"
#include "base/error.h"

namespace graft {

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

}  // namespace

std::vector<HeadLayerSpec> parse_head(const std::string& spec) {
  auto error = [&](int pos, const std::string& token, const std::string& why) {
    fail("--head '", spec, "': token ", pos, " '", token, "' ", why,
         "; tokens are flatten, gap, dense:K (K an integer or N = classes), relu, dropout:P, bn");
  };
  if (trim(spec).empty()) fail("--head is empty; e.g. 'flatten,dense:1024,relu,dense:N' or 'gap,dense:N'");
  std::vector<HeadLayerSpec> out;
  size_t start = 0;
  int pos = 0;
  while (true) {
    const size_t comma = spec.find(',', start);
    const std::string token = trim(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    ++pos;
    HeadLayerSpec l;
    l.token = token;
    l.position = pos;
    const size_t colon = token.find(':');
    const std::string name = token.substr(0, colon);
    const bool has_arg = colon != std::string::npos;
    const std::string arg = has_arg ? trim(token.substr(colon + 1)) : std::string();
    if (token.empty()) error(pos, token, "is empty");
    if (name == "flatten" || name == "gap" || name == "relu" || name == "bn") {
      if (has_arg) error(pos, token, "takes no argument");
      l.op = name == "flatten" ? HeadOp::Flatten
             : name == "gap"   ? HeadOp::GlobalAvgPool
             : name == "relu"  ? HeadOp::ReLU
                               : HeadOp::BatchNorm;
    } else if (name == "dense") {
      l.op = HeadOp::Dense;
      if (!has_arg || arg.empty()) error(pos, token, "needs a size: dense:K or dense:N");
      if (arg == "N" || arg == "n") {
        l.units_are_classes = true;
      } else {
        int k = 0;
        const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), k);
        if (ec != std::errc() || end != arg.data() + arg.size() || k < 1)
          error(pos, token, "needs a positive integer size or N");
        // A width past this is a typo, not a head: refuse it before planning gigabytes.
        if (k > kMaxHeadWidth) error(pos, token, "is wider than " + std::to_string(kMaxHeadWidth) + " units");
        l.units = k;
      }
    } else if (name == "dropout") {
      l.op = HeadOp::Dropout;
      if (!has_arg || arg.empty()) error(pos, token, "needs a rate: dropout:P");
      char* end = nullptr;
      const double p = std::strtod(arg.c_str(), &end);
      if (end != arg.c_str() + arg.size() || !(p >= 0.0 && p < 1.0)) error(pos, token, "needs a rate in [0, 1)");
      l.rate = static_cast<float>(p);
    } else {
      error(pos, token, "is not a known layer");
    }
    out.push_back(l);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int graft_head(Model& model, const std::vector<HeadLayerSpec>& head, int num_classes, const std::string& prefix) {
  GRAFT_ASSERT(!head.empty(), "an empty head");
  // On an empty model the head reads the model's input (a head alone, on cached features).
  auto current = [&] {
    if (model.num_nodes() > 0) return model.infer_shapes(1).back();
    std::vector<int64_t> dims{1};
    for (int64_t d : model.sample_shape().dims) dims.push_back(d);
    return Shape(dims);
  };
  auto error = [&](const HeadLayerSpec& l, const std::string& why) {
    fail("--head token ", l.position, " '", l.token, "' ", why);
  };
  int last = -1;
  for (size_t i = 0; i < head.size(); ++i) {
    const HeadLayerSpec& l = head[i];
    const std::string name = prefix + "." + std::to_string(i);
    const Shape in = current();
    const bool spatial = in.rank() == 4;
    switch (l.op) {
      case HeadOp::Flatten:
        if (in.rank() < 2) error(l, "needs a batched input, got " + in.str());
        last = model.add(std::make_unique<Flatten>(name));
        break;
      case HeadOp::GlobalAvgPool:
        if (!spatial) error(l, "needs a 4-D [N, H, W, C] activation, got " + in.str() + " (is there a flatten before it?)");
        last = model.add(std::make_unique<GlobalAvgPool>(name));
        break;
      case HeadOp::Dense: {
        if (in.rank() != 2)
          error(l, "follows a " + in.str() + " activation; put flatten or gap before it");
        const int units = l.units_are_classes ? num_classes : l.units;
        last = model.add(std::make_unique<Dense>(name, static_cast<int>(in[1]), units));
        break;
      }
      case HeadOp::ReLU: last = model.add(std::make_unique<ReLU>(name)); break;
      case HeadOp::Dropout: last = model.add(std::make_unique<Dropout>(name, l.rate)); break;
      case HeadOp::BatchNorm:
        if (in.rank() != 2 && in.rank() != 4) error(l, "needs a [N, C] or [N, H, W, C] input, got " + in.str());
        last = model.add(std::make_unique<BatchNorm2d>(name, static_cast<int>(in[in.rank() - 1])));
        break;
    }
  }
  const Shape out = current();
  if (out.rank() != 2)
    fail("--head ends with a ", out.str(), " activation; end it with logits [N, K], e.g. '...,flatten,dense:N'");
  return last;
}

}  // namespace graft
