// Reads sequence files (runtime/sequence_file.h, format in docs/data.md).
#include "runtime/sequence_file.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <string_view>

#include "base/error.h"
#include "runtime/class_map.h"

namespace graft {
namespace {

constexpr std::string_view kPrefix = "seq:";
constexpr std::string_view kHeader = "#classes\t";
constexpr int64_t kMaxExactToken = int64_t{1} << 24;  // token ids travel as floats

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// At most 20 characters of a bad field, so a long line gives a short message.
std::string quote(std::string_view s) {
  return "'" + std::string(s.substr(0, 20)) + (s.size() > 20 ? "...'" : "'");
}

struct Reader {
  const std::string& path;
  const SequenceReadOptions& options;
  int64_t line_no = 0;
  SequenceFile out;
  int64_t features = 0;                 // the first example's, every one must match
  std::vector<std::vector<float>> rows;  // per example, steps * features

  [[noreturn]] void bad(const std::string& what) const { fail(path, ":", line_no, ": ", what); }

  int32_t label(std::string_view s) const {
    int64_t v = -1;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0)
      bad("the label " + quote(s) + " is not a class index (a whole number from 0)");
    if (v > INT32_MAX) bad("the label " + std::to_string(v) + " is too large");
    return static_cast<int32_t>(v);
  }

  float token(std::string_view s) const {
    int64_t v = -1;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v < 0)
      bad("the token " + quote(s) +
          " is not a token id (a whole number from 0; write float features as 'a,b;c,d')");
    if (options.vocab > 0 && v >= options.vocab)
      bad("the token id " + std::to_string(v) + " is outside the vocabulary of " + std::to_string(options.vocab) +
          " (ids 0.." + std::to_string(options.vocab - 1) + ")");
    if (v >= kMaxExactToken) bad("the token id " + std::to_string(v) + " is too large (at most 16777215)");
    return static_cast<float>(v);
  }

  float number(std::string_view s, size_t step) const {
    const std::string_view t = trim(s);
    float v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size())
      bad("step " + std::to_string(step + 1) + ": " + quote(s) + " is not a number");
    if (!std::isfinite(v)) bad("step " + std::to_string(step + 1) + ": " + quote(s) + " is not finite");
    return v;
  }

  // One example's values and its number of steps.
  std::pair<std::vector<float>, int64_t> body(std::string_view s) {
    std::vector<float> values;
    // The first example decides the file's kind; after it, "0.5" is one step of one feature.
    const bool separators = s.find_first_of(",;") != std::string_view::npos;
    if (rows.empty()) out.tokens = !separators;
    if (out.tokens && separators)
      bad("this line holds feature vectors (',' or ';') but the file's first example holds token ids; one file "
          "holds one kind");
    if (out.tokens) {
      size_t i = 0;
      while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
        if (j > i) values.push_back(token(s.substr(i, j - i)));
        i = j;
      }
      if (rows.empty()) features = 1;
      return {std::move(values), static_cast<int64_t>(values.size())};
    }
    auto steps = split(s, ';');
    if (trim(steps.back()).empty()) steps.pop_back();  // "a,b;c,d;" ends with the separator
    for (size_t t = 0; t < steps.size(); ++t) {
      if (trim(steps[t]).empty()) bad("step " + std::to_string(t + 1) + " is empty (two ';' in a row?)");
      const auto fields = split(steps[t], ',');
      if (rows.empty() && t == 0) features = static_cast<int64_t>(fields.size());
      if (static_cast<int64_t>(fields.size()) != features)
        bad("step " + std::to_string(t + 1) + " has " + std::to_string(fields.size()) + " features but the file's first " +
            "step has " + std::to_string(features) + " (every step of every example has the same number)");
      for (const auto f : fields) values.push_back(number(f, t));
    }
    return {std::move(values), static_cast<int64_t>(steps.size())};
  }

  void line(std::string_view s) {
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);  // CRLF files
    if (trim(s).empty()) return;
    if (s.starts_with(kHeader)) {
      if (!rows.empty() || !out.data.class_names.empty())
        bad("a '#classes' header must come before the first example, once");
      for (const auto name : split(s.substr(kHeader.size()), '\t')) {
        if (trim(name).empty()) bad("the '#classes' header has an empty class name");
        out.data.class_names.emplace_back(trim(name));
      }
      return;
    }
    if (s.front() == '#') return;  // a comment
    const size_t tab = s.find('\t');
    if (tab == std::string_view::npos && !options.unlabelled)
      bad("expected LABEL<TAB>SEQUENCE, found no tab in " + quote(s));
    const int32_t y = options.unlabelled ? 0 : label(trim(s.substr(0, tab)));
    auto [values, steps] = body(trim(tab == std::string_view::npos ? s : s.substr(tab + 1)));
    if (steps == 0) bad("the sequence is empty (every example needs at least one step)");
    out.longest = std::max(out.longest, steps);
    if (options.max_steps > 0 && steps > options.max_steps) {  // keep the start
      values.resize(static_cast<size_t>(options.max_steps * features));
      ++out.truncated;
    }
    out.data.labels.push_back(y);
    rows.push_back(std::move(values));
    label_lines.push_back(line_no);
    out.lines.push_back(line_no);
  }

  std::vector<int64_t> label_lines;  // each example's line, for a label error found at the end

  void finish() {
    Dataset& d = out.data;
    if (rows.empty()) fail(path, ": no examples (one per line: LABEL<TAB>SEQUENCE, see docs/data.md)");
    if (!options.class_names.empty()) d.class_names = options.class_names;
    const std::string names_from = !options.class_names.empty() ? "the classes file" : "the '#classes' header";
    if (d.class_names.empty()) {
      const int32_t top = *std::max_element(d.labels.begin(), d.labels.end());
      d.class_names = index_class_names(top + 1);
    } else {
      for (size_t i = 0; i < d.labels.size(); ++i)
        if (d.labels[i] >= static_cast<int32_t>(d.class_names.size())) {
          line_no = label_lines[i];
          bad("the label " + std::to_string(d.labels[i]) + " is out of range: " + names_from + " names " +
              std::to_string(d.class_names.size()) + " classes (labels 0.." + std::to_string(d.class_names.size() - 1) + ")");
        }
    }
    int64_t steps = 0;
    for (const auto& r : rows) steps = std::max(steps, static_cast<int64_t>(r.size()) / features);
    d.images = HostTensor(Shape{static_cast<int64_t>(rows.size()), steps, features});
    d.lengths.resize(rows.size());
    const size_t per = static_cast<size_t>(steps * features);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::copy(rows[i].begin(), rows[i].end(), d.images.data() + i * per);  // the rest stays zero
      d.lengths[i] = static_cast<int32_t>(static_cast<int64_t>(rows[i].size()) / features);
    }
    d.origin = path;
  }
};

}  // namespace

bool is_sequence_file(const std::string& spec) {
  return std::string_view(spec).starts_with(kPrefix) || (spec.size() > 4 && spec.ends_with(".seq"));
}

std::string sequence_file_path(const std::string& spec) {
  return std::string_view(spec).starts_with(kPrefix) ? spec.substr(kPrefix.size()) : spec;
}

SequenceFile read_sequence_file(const std::string& path, const SequenceReadOptions& options) {
  if (options.max_steps < 0) fail("--max-steps: must be 0 (no cap) or more, got ", options.max_steps);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the sequence file (does it exist and is it readable?)");
  Reader r{path, options};
  std::string text;
  while (std::getline(in, text)) {  // any length; a missing final newline still ends the line
    ++r.line_no;
    r.line(text);
  }
  if (in.bad()) fail(path, ": read error after line ", r.line_no);
  r.finish();
  return std::move(r.out);
}

Dataset pad_steps(Dataset d, int64_t steps) {
  const auto dims = d.images.shape.dims;
  GRAFT_ASSERT(dims.size() == 3 && steps >= dims[1], "pad_steps wants [N, steps, features] and no fewer steps");
  if (dims[1] == steps) return d;
  HostTensor x(Shape{dims[0], steps, dims[2]});
  const size_t from = static_cast<size_t>(dims[1] * dims[2]), to = static_cast<size_t>(steps * dims[2]);
  for (size_t i = 0; i < static_cast<size_t>(dims[0]); ++i)
    std::copy_n(d.images.data() + i * from, from, x.data() + i * to);
  d.images = std::move(x);
  if (d.lengths.empty()) d.lengths.assign(static_cast<size_t>(dims[0]), static_cast<int32_t>(dims[1]));
  return d;
}

HeldOut hold_out(const Dataset& d, double fraction, uint64_t seed) {
  GRAFT_ASSERT(fraction > 0 && fraction < 1);
  std::vector<bool> to_second(static_cast<size_t>(d.size()), false);
  for (int c = 0; c < d.num_classes(); ++c) {
    std::vector<int64_t> members;
    for (int64_t i = 0; i < d.size(); ++i)
      if (d.labels[size_t(i)] == c) members.push_back(i);
    if (members.empty()) continue;
    if (members.size() < 2)
      fail(d.origin, ": class '", d.class_names[size_t(c)], "' has one example; --val-split needs at least two per class");
    const auto n = std::clamp<int64_t>(std::llround(fraction * double(members.size())), 1, int64_t(members.size()) - 1);
    const auto order = epoch_order(int64_t(members.size()), seed, c, true);  // a draw per class
    for (int64_t k = 0; k < n; ++k) to_second[size_t(members[size_t(order[size_t(k)])])] = true;
  }
  HeldOut out;
  const int64_t per = d.image_numel();
  for (Dataset* part : {&out.first, &out.second}) {
    const bool second = part == &out.second;
    std::vector<float> values;
    for (int64_t i = 0; i < d.size(); ++i) {
      if (to_second[size_t(i)] != second) continue;
      values.insert(values.end(), d.images.data() + i * per, d.images.data() + (i + 1) * per);
      part->labels.push_back(d.labels[size_t(i)]);
      if (!d.lengths.empty()) part->lengths.push_back(d.lengths[size_t(i)]);
    }
    auto dims = d.images.shape.dims;
    dims[0] = part->size();
    part->images = HostTensor(Shape(dims), std::move(values));
    part->class_names = d.class_names;
    part->origin = d.origin + (second ? " (--val-split part)" : " (training part)");
  }
  return out;
}

std::string truncation_note(const SequenceFile& f, int max_steps, const std::string& cap) {
  if (f.truncated == 0) return "";
  return "truncated " + std::to_string(f.truncated) + " of " + std::to_string(f.data.size()) + " sequences in " +
         f.data.origin + " to " + (cap.empty() ? "--max-steps " + std::to_string(max_steps) : cap) + " (kept the first " +
         std::to_string(max_steps) + " steps; the longest had " + std::to_string(f.longest) + ")";
}

}  // namespace graft
