// The fuzz targets' bodies, shared by the libFuzzer programs (tests/fuzz/fuzz_*.cpp, built
// by tools/fuzz.sh) and by the regression test (tests/fuzz_regression_test.cpp), which runs
// every committed corpus and crash input through exactly the same code in the normal suite.
//
// Each check_*() takes arbitrary outside bytes. The promise under test: the parser either
// returns a value consistent with what it claims (checked here) or throws graft::Error with
// a message. It returns "" when the promise held, or a description of the broken promise.
// Any other exception propagates (a bug: the CLI would print an unhelpful message or
// terminate); crashes, sanitizer reports, leaks and hangs are caught by the harness.
#pragma once
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "runtime/idx.h"
#include "runtime/safetensors.h"

// True in the libFuzzer programs (tools/fuzz.sh defines GRAFT_FUZZING), false in the
// regression test, which replays every committed input in full.
#ifdef GRAFT_FUZZING
inline constexpr bool kFuzzing = true;
#else
inline constexpr bool kFuzzing = false;
#endif

// Parsers that other work is adding: their targets exist where their headers do.
#if __has_include("runtime/image_decode.h") && __has_include("runtime/augment.h")
#define GRAFT_FUZZ_HAVE_IMAGE 1
#include "runtime/augment.h"
#include "runtime/image_decode.h"
#endif
#if __has_include("runtime/class_map.h")
#define GRAFT_FUZZ_HAVE_CLASS_MAP 1
#include "runtime/class_map.h"
#endif
#if __has_include("layers/head.h") && __has_include("layers/zoo.h")
#define GRAFT_FUZZ_HAVE_HEAD 1
#include "layers/head.h"
#include "layers/zoo.h"
#include "runtime/memory_pool.h"
#endif
#if __has_include("runtime/trainer.h") && __has_include("layers/zoo.h")
#define GRAFT_FUZZ_HAVE_SPECS 1
#include "layers/zoo.h"
#include "runtime/memory_pool.h"
#include "runtime/model.h"
#include "runtime/trainer.h"
#endif

namespace graft::fuzz {

// safetensors: parse_safetensors on the bytes; then to_floats() and to_host_tensor() on
// every tensor, whose sizes must match the declared shape.
inline std::string check_safetensors(const uint8_t* data, size_t size) {
  SafetensorsFile file;
  try {
    file = parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const Error&) {
    return "";  // rejected with a message: the expected outcome for most inputs
  }
  for (const auto& [name, t] : file.tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) return "tensor '" + name + "' parsed with a negative dimension";
      numel *= static_cast<uint64_t>(d);
    }
    std::vector<float> values;
    try {
      values = t.to_floats();
    } catch (const Error&) {
      continue;  // dtypes with no float conversion (U16, U32, U64, F8_*) are refused
    }
    if (values.size() != numel)
      return "tensor '" + name + "': to_floats gave " + std::to_string(values.size()) + " values for " +
             std::to_string(numel) + " elements";
    const HostTensor h = t.to_host_tensor();  // must not throw once to_floats succeeded
    if (h.values.size() != values.size()) return "tensor '" + name + "': to_host_tensor changed the size";
  }
  return "";
}

namespace detail {

inline std::string temp_base() {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/graft-fuzz-" + std::to_string(::getpid());
}

inline bool write_raw(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok;
}

inline bool write_gzip(const std::string& path, const uint8_t* data, size_t size) {
  gzFile f = gzopen(path.c_str(), "wb1");
  if (!f) return false;
  const bool ok = size == 0 || gzwrite(f, data, static_cast<unsigned>(size)) == static_cast<int>(size);
  return gzclose(f) == Z_OK && ok;
}

struct IdxOutcome {
  bool ok = false;
  IdxArray value;
};

template <typename F>
IdxOutcome idx_outcome(F&& f) {
  IdxOutcome o;
  try {
    o.value = f();
    o.ok = true;
  } catch (const Error&) {
  }
  return o;
}

inline std::string idx_consistent(const IdxOutcome& o, const char* which) {
  if (!o.ok) return "";
  uint64_t numel = 1;
  for (int64_t d : o.value.dims) numel *= static_cast<uint64_t>(d);
  if (o.value.dims.empty() || o.value.data.size() != numel)
    return std::string(which) + " returned " + std::to_string(o.value.data.size()) + " bytes for " +
           std::to_string(numel) + " elements";
  return "";
}

inline std::string idx_same(const IdxOutcome& a, const IdxOutcome& b, const char* which) {
  if (a.ok != b.ok)
    return std::string("parse_idx ") + (a.ok ? "accepted" : "refused") + " the bytes but " + which +
           (b.ok ? " accepted" : " refused") + " them";
  if (a.ok && (a.value.dims != b.value.dims || a.value.data != b.value.data))
    return std::string("parse_idx and ") + which + " returned different arrays";
  return "";
}

}  // namespace detail

// IDX: parse_idx on the bytes (in memory), and read_idx (zlib's gzread, which reads plain
// files transparently) on a temporary file holding the bytes as they are. Both must be
// consistent, and agree with each other unless the bytes are gzip (which only read_idx
// accepts): corrupt and truncated gzip framing is fuzzed this way, from gzip seeds.
inline std::string check_idx(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return "";  // keep the file round trips fast
  using namespace detail;
  const IdxOutcome mem = idx_outcome([&] { return parse_idx(data, size, "fuzz.idx"); });
  if (auto e = idx_consistent(mem, "parse_idx"); !e.empty()) return e;

  static const std::string raw = temp_base() + ".idx";
  const bool is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  if (!write_raw(raw, data, size)) return "cannot write " + raw;
  const IdxOutcome plain = idx_outcome([&] { return read_idx(raw); });
  ::unlink(raw.c_str());
  if (auto e = idx_consistent(plain, "read_idx (plain file)"); !e.empty()) return e;
  if (!is_gzip)
    if (auto e = idx_same(mem, plain, "read_idx (plain file)"); !e.empty()) return e;
  return "";
}

// IDX through gzip: the bytes are gzip-compressed into a temporary file and read with
// read_idx, which must agree with parse_idx on the uncompressed bytes (the IDX header and
// size checks on the streaming, chunked gzread path).
inline std::string check_idx_gzip(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return "";
  using namespace detail;
  const IdxOutcome mem = idx_outcome([&] { return parse_idx(data, size, "fuzz.idx"); });
  static const std::string gz = temp_base() + ".idx.gz";
  if (!write_gzip(gz, data, size)) return "cannot write " + gz;
  const IdxOutcome zipped = idx_outcome([&] { return read_idx(gz); });
  ::unlink(gz.c_str());
  if (auto e = idx_consistent(zipped, "read_idx (gzip file)"); !e.empty()) return e;
  const bool is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  if (!is_gzip)
    if (auto e = idx_same(mem, zipped, "read_idx (gzip file)"); !e.empty()) return e;
  return "";
}

#ifdef GRAFT_FUZZ_HAVE_IMAGE

// Images: decode_image_memory on the bytes (stb_image, every format it knows, with graft's
// size limit and truncation checks); a decoded image then goes through the training
// pipeline's resize and augmentation (random resized crop, Keras affine, flips) and the
// plain resize, to sizes derived from the input, and every output value must be finite.
inline std::string check_image(const uint8_t* data, size_t size) {
  // A few bytes of RLE can declare tens of megapixels (legal, and ~0.3 s to decode in a
  // release build, but over the 10 s per-input limit under ASan): the fuzzer skips headers
  // past 4 megapixels; the same decoder loops run on the smaller images.
  int declared_w = 0, declared_h = 0;
  if (kFuzzing && declared_image_size(data, size, &declared_w, &declared_h) &&
      int64_t(declared_w) * int64_t(declared_h) > (int64_t(1) << 22))
    return "";
  RgbImage img;
  try {
    img = decode_image_memory(data, size, "fuzz input");
  } catch (const Error&) {
    return "";
  }
  if (img.width < 1 || img.height < 1 || img.width > kMaxImageSide || img.height > kMaxImageSide)
    return "decoded a " + std::to_string(img.width) + "x" + std::to_string(img.height) + " image";
  if (img.pixels.size() != size_t(img.width) * size_t(img.height) * 3)
    return "pixel buffer of " + std::to_string(img.pixels.size()) + " bytes for " + std::to_string(img.width) + "x" +
           std::to_string(img.height);
  // Keep large ones fast: antialiased downsampling to the tiny sizes below costs about
  // width x (width / out_w) per row, seconds under ASan for a 2-megapixel image.
  if (size_t(img.width) * size_t(img.height) > (kFuzzing ? size_t(1) << 18 : size_t(1) << 22)) return "";
  const int out_w = 1 + int(size % 31), out_h = 1 + int((size / 31) % 29);
  AugmentConfig cfg;
  cfg.normalize = Normalization::preset("imagenet");
  cfg.rotation_range = 40;
  cfg.width_shift_range = 0.2f;
  cfg.height_shift_range = 3;
  cfg.shear_range = 20;
  cfg.zoom_range = 0.3f;
  cfg.horizontal_flip = cfg.vertical_flip = true;
  cfg.random_resized_crop.enabled = (size & 1) != 0;
  cfg.validate();
  std::vector<float> out(size_t(out_w) * size_t(out_h) * 3, std::nanf(""));
  for (const bool augment : {false, true}) {
    augment_image(img, cfg, augment, /*seed=*/size, /*epoch=*/1, /*example=*/int64_t(size % 7), out_w, out_h,
                  out.data());
    for (float v : out)
      if (!std::isfinite(v)) return "augment_image wrote a non-finite value";
  }
  const RgbImage small = resize_image(img, out_w, out_h);
  if (small.width != out_w || small.height != out_h || small.pixels.size() != out.size())
    return "resize_image returned the wrong size";
  return "";
}
#endif

#ifdef GRAFT_FUZZ_HAVE_CLASS_MAP

// Class maps: read_class_map on the bytes as a file; what it accepts must be a non-empty
// list of unique non-empty names, and (for one input in eight: the write fsyncs) must
// survive write_class_map + read_class_map unchanged.
inline std::string check_class_map(const uint8_t* data, size_t size) {
  using namespace detail;
  static const std::string path = temp_base() + ".classes.json", again = temp_base() + ".again.classes.json";
  if (!write_raw(path, data, size)) return "cannot write " + path;
  std::vector<std::string> classes;
  try {
    classes = read_class_map(path);
  } catch (const Error&) {
    ::unlink(path.c_str());
    return "";
  }
  ::unlink(path.c_str());
  if (classes.empty()) return "read_class_map accepted an empty list";
  std::set<std::string> unique;
  for (const auto& c : classes) {
    if (c.empty()) return "read_class_map accepted an empty name";
    if (!unique.insert(c).second) return "read_class_map accepted the repeated name '" + c + "'";
  }
  if (size % 8 == 0) {
    write_class_map(again, classes);  // must not throw on a list read_class_map accepted
    const std::vector<std::string> back = read_class_map(again);
    ::unlink(again.c_str());
    if (back != classes) return "write_class_map + read_class_map changed the list";
  }
  return "";
}
#endif

#ifdef GRAFT_FUZZ_HAVE_HEAD

// Head specs (--head): parse_head on the text; an accepted spec is grafted onto a small
// backbone (fmnist_cnn at 8x8, 3 classes) through build_model, which must build a model
// whose output is [N, K] or refuse with a message.
inline std::string check_head_spec(const uint8_t* data, size_t size) {
  if (size > 4096) return "";
  const std::string spec(reinterpret_cast<const char*>(data), size);
  std::vector<HeadLayerSpec> head;
  try {
    head = parse_head(spec);
  } catch (const Error&) {
    return "";
  }
  size_t commas = 0;
  for (char c : spec) commas += c == ',';
  if (head.size() != commas + 1) return "parse_head returned " + std::to_string(head.size()) + " layers";
  if (head.size() > 64) return "";  // each layer costs a model node: keep it fast
  // dense:K accepts any K up to INT_MAX; the parameters are then allocated as asked. A width
  // beyond memory is refused by HostPool (graft::Error "out of host memory") in a normal
  // build, but the fuzzer's malloc limit and ASan's allocator abort first: not fuzzed.
  for (const HeadLayerSpec& l : head)
    if (l.op == HeadOp::Dense && l.units > (1 << 14)) return "";
  HostPool pool;
  std::unique_ptr<Model> model;
  try {
    ModelSpec ms;
    ms.architecture = "fmnist_cnn";
    ms.sample_shape = Shape{8, 8, 1};
    ms.num_classes = 3;
    ms.head = spec;
    model = build_model(ms, pool);
  } catch (const Error&) {
    return "";
  }
  const Shape out = model->infer_shapes(2).back();
  if (out.rank() != 2 || out[0] != 2 || out[1] < 1) return "the grafted model's output is " + out.str();
  return "";
}
#endif

#ifdef GRAFT_FUZZ_HAVE_SPECS

// Flag values: --lr-mult (parse_lr_mult) on the whole text, and --freeze patterns (one a
// line) resolved on a small model (resolve_freeze_patterns).
inline std::string check_specs(const uint8_t* data, size_t size) {
  if (size > 4096) return "";
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto [glob, factor] = parse_lr_mult(text);
    if (glob.empty() || !std::isfinite(factor) || factor < 0) return "parse_lr_mult accepted '" + text + "'";
  } catch (const Error&) {
  }
  static HostPool pool;
  static const std::unique_ptr<Model> model = [] {
    ModelSpec spec;
    spec.architecture = "fmnist_cnn";
    spec.sample_shape = Shape{8, 8, 1};
    spec.num_classes = 3;
    return build_model(spec, pool);
  }();
  std::vector<std::string> patterns;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t nl = text.find('\n', start);
    patterns.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  try {
    const std::vector<bool> frozen = resolve_freeze_patterns(*model, patterns);
    if (frozen.size() != size_t(model->num_nodes())) return "resolve_freeze_patterns returned the wrong size";
  } catch (const Error&) {
  }
  return "";
}
#endif

struct Target {
  const char* name;  // tests/fuzz/corpus/<name>, tests/fuzz/regressions/<name>
  std::string (*check)(const uint8_t*, size_t);
};

// Every target this checkout has (parsers that do not exist yet are left out).
inline std::vector<Target> targets() {
  std::vector<Target> t;
  t.push_back({"fuzz_safetensors", &check_safetensors});
  t.push_back({"fuzz_idx", &check_idx});
  t.push_back({"fuzz_idx_gzip", &check_idx_gzip});
#ifdef GRAFT_FUZZ_HAVE_IMAGE
  t.push_back({"fuzz_image", &check_image});
#endif
#ifdef GRAFT_FUZZ_HAVE_CLASS_MAP
  t.push_back({"fuzz_class_map", &check_class_map});
#endif
#ifdef GRAFT_FUZZ_HAVE_HEAD
  t.push_back({"fuzz_head_spec", &check_head_spec});
#endif
#ifdef GRAFT_FUZZ_HAVE_SPECS
  t.push_back({"fuzz_specs", &check_specs});
#endif
  return t;
}

}  // namespace graft::fuzz

// Defines the libFuzzer entry point for one check: a broken promise aborts with its text.
#define GRAFT_FUZZ_TARGET(check)                                                   \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {        \
    const std::string broken = (check)(data, size);                                \
    if (!broken.empty()) {                                                         \
      std::fprintf(stderr, "graft fuzz: broken promise: %s\n", broken.c_str());    \
      std::abort();                                                                \
    }                                                                              \
    return 0;                                                                      \
  }
