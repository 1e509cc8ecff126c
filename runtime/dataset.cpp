// Fashion-MNIST loading, class and few-shot selection, seeded epoch order, batch gathering.
#include "runtime/dataset.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <set>

#include "base/error.h"
#include "runtime/idx.h"

namespace graft {

namespace {

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

std::string join_path(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

// dir/name or dir/name.gz, whichever exists (plain first).
std::string find_idx_file(const std::string& dir, const std::string& name) {
  const std::string plain = join_path(dir, name);
  const std::string gz = plain + ".gz";
  std::error_code ec;
  if (std::filesystem::exists(plain, ec)) return plain;
  if (std::filesystem::exists(gz, ec)) return gz;
  fail("Fashion-MNIST file not found: neither ", plain, " nor ", gz,
       " exists. Install the data set with `apt-get install dataset-fashion-mnist` (it goes to ",
       kFashionMnistDir, ") or point --data-dir at a folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]");
}

// SplitMix64: a good 64-bit mixer for deriving independent seeds.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform integer in [0, bound) by rejection, the same on every standard library
// (std::uniform_int_distribution is implementation-defined).
uint64_t uniform_below(std::mt19937_64& gen, uint64_t bound) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t x;
  do {
    x = gen();
  } while (x >= limit);
  return x % bound;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Copies the examples `indices` (in that order) of `d` into a new dataset.
Dataset take(const Dataset& d, const std::vector<int64_t>& indices) {
  Dataset out;
  out.class_names = d.class_names;
  out.origin = d.origin;
  std::vector<int64_t> dims = d.images.shape.dims;
  if (dims.empty()) dims.push_back(0);
  dims[0] = static_cast<int64_t>(indices.size());
  out.images = HostTensor(Shape(dims));
  out.labels.resize(indices.size());
  const size_t per = static_cast<size_t>(d.image_numel());
  for (size_t i = 0; i < indices.size(); ++i) {
    const size_t src = static_cast<size_t>(indices[i]);
    out.labels[i] = d.labels[src];
    if (!d.lengths.empty()) out.lengths.push_back(d.lengths[src]);  // sequences keep their lengths
    if (per) std::memcpy(out.images.data() + i * per, d.images.data() + src * per, per * sizeof(float));
  }
  return out;
}

void check_consistent(const Dataset& d, const char* what) {
  if (d.images.shape.rank() < 1 || d.images.shape[0] != d.size())
    fail(what, ": dataset ", d.origin, " has images of shape ", d.images.shape.str(), " but ", d.size(), " labels");
  if (!d.lengths.empty() && static_cast<int64_t>(d.lengths.size()) != d.size())
    fail(what, ": dataset ", d.origin, " has ", d.lengths.size(), " sequence lengths for ", d.size(), " examples");
}

}  // namespace

Dataset load_fashion_mnist(const std::string& dir, bool train) {
  const std::string split = train ? "train" : "t10k";
  const std::string images_path = find_idx_file(dir, split + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(dir, split + "-labels-idx1-ubyte");
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);

  if (images.dims.size() != 3 || images.dims[1] != 28 || images.dims[2] != 28) {
    std::string d;
    for (int64_t x : images.dims) d += (d.empty() ? "" : " x ") + std::to_string(x);
    fail(images_path, ": expected Fashion-MNIST images of N x 28 x 28, found dimensions ", d);
  }
  if (labels.dims.size() != 1)
    fail(labels_path, ": expected a 1-dimensional label file, found ", labels.dims.size(), " dimensions");
  if (images.dims[0] != labels.dims[0])
    fail(images_path, " holds ", images.dims[0], " images but ", labels_path, " holds ", labels.dims[0],
         " labels; the two files must come from the same split");

  Dataset d;
  d.class_names = fashion_mnist_classes();
  d.origin = images_path;
  const int64_t n = images.dims[0];
  d.labels.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t l = labels.data[static_cast<size_t>(i)];
    if (l >= 10) fail(labels_path, ": label ", int{l}, " at index ", i, " is not a Fashion-MNIST class (0-9)");
    d.labels[static_cast<size_t>(i)] = l;
  }
  d.images = HostTensor(Shape{n, 28, 28, 1});
  float* px = d.images.data();
  for (size_t i = 0; i < images.data.size(); ++i) px[i] = static_cast<float>(images.data[i]) / 255.0f;
  return d;
}

std::vector<int> parse_class_list(const std::string& spec, int num_classes, const std::string& flag) {
  const std::string valid = num_classes > 0 ? "0-" + std::to_string(num_classes - 1) : "none";
  if (num_classes <= 0) fail(flag, ": there are no classes to choose from");
  const std::string hint = " (expected class indices like 0-4, 5,7,9 or 0-2,8; valid classes are " + valid + ")";
  if (trim(spec).empty()) fail(flag, ": empty class list", hint);

  auto parse_index = [&](const std::string& tok, const std::string& entry) -> int {
    const std::string t = trim(tok);
    long long v = 0;
    const char* b = t.data();
    const char* e = t.data() + t.size();
    const auto [ptr, ec] = std::from_chars(b, e, v);
    if (t.empty() || t[0] == '-' || t[0] == '+' || ec == std::errc::invalid_argument || ptr != e)
      fail(flag, ": '", entry, "' in '", spec, "' is not a class index or range", hint);
    if (ec == std::errc::result_out_of_range || v >= num_classes)
      fail(flag, ": class ", t, " is out of range; valid classes are ", valid);
    return static_cast<int>(v);
  };

  std::vector<int> out;
  std::set<int> seen;
  size_t start = 0;
  while (true) {
    const size_t comma = spec.find(',', start);
    const std::string entry = trim(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (entry.empty()) fail(flag, ": empty entry in '", spec, "'", hint);
    const size_t dash = entry.find('-', 1);
    int lo, hi;
    if (dash == std::string::npos || entry[0] == '-') {
      lo = hi = parse_index(entry, entry);
    } else {
      lo = parse_index(entry.substr(0, dash), entry);
      hi = parse_index(entry.substr(dash + 1), entry);
      if (lo > hi) fail(flag, ": range '", entry, "' is reversed; write ", hi, "-", lo);
    }
    for (int c = lo; c <= hi; ++c) {
      if (!seen.insert(c).second) fail(flag, ": class ", c, " is listed twice in '", spec, "'");
      out.push_back(c);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Dataset select_classes(const Dataset& d, const std::vector<int>& classes) {
  check_consistent(d, "select_classes");
  if (classes.empty()) fail("select_classes: no classes given for ", d.origin);
  std::vector<int> new_label(static_cast<size_t>(d.num_classes()), -1);
  for (size_t i = 0; i < classes.size(); ++i) {
    const int c = classes[i];
    if (c < 0 || c >= d.num_classes())
      fail("select_classes: class ", c, " is out of range for ", d.origin, " (classes 0-", d.num_classes() - 1, ")");
    if (new_label[static_cast<size_t>(c)] >= 0) fail("select_classes: class ", c, " is given twice");
    new_label[static_cast<size_t>(c)] = static_cast<int>(i);
  }
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < d.size(); ++i) {
    const int32_t l = d.labels[static_cast<size_t>(i)];
    if (l < 0 || l >= d.num_classes())
      fail("select_classes: example ", i, " of ", d.origin, " has label ", l, " outside 0-", d.num_classes() - 1);
    if (new_label[static_cast<size_t>(l)] >= 0) keep.push_back(i);
  }
  Dataset out = take(d, keep);
  for (auto& l : out.labels) l = new_label[static_cast<size_t>(l)];
  out.class_names.clear();
  for (int c : classes) out.class_names.push_back(d.class_names[static_cast<size_t>(c)]);
  return out;
}

Dataset few_shot(const Dataset& d, int per_class, uint64_t seed) {
  check_consistent(d, "few_shot");
  if (per_class < 1) fail("few-shot: the number of examples per class must be at least 1 (got ", per_class, ")");
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(d.num_classes()));
  for (int64_t i = 0; i < d.size(); ++i) {
    const int32_t l = d.labels[static_cast<size_t>(i)];
    if (l < 0 || l >= d.num_classes())
      fail("few-shot: example ", i, " of ", d.origin, " has label ", l, " outside 0-", d.num_classes() - 1);
    by_class[static_cast<size_t>(l)].push_back(i);
  }
  std::vector<int64_t> keep;
  for (size_t c = 0; c < by_class.size(); ++c) {
    auto& idx = by_class[c];
    const size_t k = static_cast<size_t>(per_class);
    if (idx.size() < k)
      fail("few-shot: class '", d.class_names[c], "' (", c, ") has only ", idx.size(), " examples in ", d.origin,
           ", fewer than the ", per_class, " per class asked for");
    // Partial Fisher-Yates with a stream derived from (seed, class): each class's draw is
    // independent of the others.
    std::mt19937_64 gen(splitmix64(seed ^ splitmix64(0x5eed0000ull + c)));
    for (size_t i = 0; i < k; ++i) {
      const size_t j = i + static_cast<size_t>(uniform_below(gen, idx.size() - i));
      std::swap(idx[i], idx[j]);
    }
    keep.insert(keep.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k));
  }
  std::sort(keep.begin(), keep.end());  // dataset order
  return take(d, keep);
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  if (n < 0) fail("epoch_order: negative example count ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  if (!shuffle || n < 2) return order;
  std::mt19937_64 gen(splitmix64(seed ^ splitmix64(static_cast<uint64_t>(epoch) + 0x0e90c4ull)));
  for (size_t i = static_cast<size_t>(n) - 1; i > 0; --i) {
    const size_t j = static_cast<size_t>(uniform_below(gen, i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

void gather_batch(const Dataset& d, std::span<const int64_t> indices, float* images, int32_t* labels) {
  const size_t per = static_cast<size_t>(d.image_numel());
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t src = indices[i];
    if (src < 0 || src >= d.size())
      fail("gather_batch: index ", src, " is outside ", d.origin, " (", d.size(), " examples)");
    if (images && per)
      std::memcpy(images + i * per, d.images.data() + static_cast<size_t>(src) * per, per * sizeof(float));
    if (labels) labels[i] = d.labels[static_cast<size_t>(src)];
  }
}

}  // namespace graft
