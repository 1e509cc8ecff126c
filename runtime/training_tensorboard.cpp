// What --tensorboard shows of a training run: the resolved configuration as text; per step
// (at every look at the device: each step on the CPU, every --sync-every steps on a GPU) the
// loss, accuracy, images/s, peak pool memory and learning rate per group; per epoch the same
// with validation, the validation confusion matrix as a heat map, a grid of misclassified
// validation images, and histograms of the trainable weights.
#include <algorithm>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/training_run.h"

namespace graft {

namespace {

// Row-normalised counts, white (none) to dark blue (all of the row), one square per cell.
RgbImage confusion_heat_map(const std::vector<std::vector<int64_t>>& confusion) {
  const int c = static_cast<int>(confusion.size());
  const int cell = std::clamp(384 / std::max(c, 1), 4, 32);
  RgbImage img(c * cell + 2, c * cell + 2, 160);  // a grey frame
  for (int t = 0; t < c; ++t) {
    int64_t row = 0;
    for (int64_t v : confusion[size_t(t)]) row += v;
    for (int p = 0; p < c; ++p) {
      const double f = row ? double(confusion[size_t(t)][size_t(p)]) / double(row) : 0.0;
      const uint8_t rgb[3] = {static_cast<uint8_t>(255 - f * (255 - 8)), static_cast<uint8_t>(255 - f * (255 - 48)),
                              static_cast<uint8_t>(255 - f * (255 - 107))};
      for (int y = 0; y < cell; ++y)
        for (int x = 0; x < cell; ++x) std::copy(rgb, rgb + 3, img.at(1 + p * cell + x, 1 + t * cell + y));
    }
  }
  return img;
}

// The kept examples side by side, each stretched from its own minimum to maximum (the
// normalisation undone up to scale, whichever it was) and enlarged to about 64 pixels.
RgbImage misclassified_grid(const ValidationExamples& v) {
  const int h = static_cast<int>(v.sample.dims[0]), w = static_cast<int>(v.sample.dims[1]);
  const int channels = static_cast<int>(v.sample.dims[2]);
  const int scale = std::max(1, 64 / std::max(h, w));
  const int count = static_cast<int>(v.misclassified.size());
  const int cols = std::min(count, 4), rows = (count + cols - 1) / cols, gap = 2;
  RgbImage img(cols * (w * scale + gap) + gap, rows * (h * scale + gap) + gap, 255);
  for (int k = 0; k < count; ++k) {
    const auto& in = v.misclassified[size_t(k)].input;
    const auto [lo, hi] = std::minmax_element(in.begin(), in.end());
    const float range = *hi > *lo ? *hi - *lo : 1.0f;
    const int x0 = gap + (k % cols) * (w * scale + gap), y0 = gap + (k / cols) * (h * scale + gap);
    for (int y = 0; y < h * scale; ++y)
      for (int x = 0; x < w * scale; ++x) {
        const float* px = in.data() + (size_t(y / scale) * size_t(w) + size_t(x / scale)) * size_t(channels);
        uint8_t* out = img.at(x0 + x, y0 + y);
        for (int ch = 0; ch < 3; ++ch)
          out[ch] = static_cast<uint8_t>(std::lround(255.0f * (px[channels >= 3 ? ch : 0] - *lo) / range));
      }
  }
  return img;
}

}  // namespace

// The configuration at the run's first step (a resumed run's too: its flags may differ).
void TrainingRun::board_start() {
  TensorBoard* tb = board();
  if (!tb) return;
  std::string pretty = o_.config_json;
  try {
    pretty = nlohmann::json::parse(o_.config_json).dump(2);
  } catch (const std::exception&) {
  }
  tb->text("config", at_.step, "```json\n" + pretty + "\n```");
  tb->flush();
  board_time_ = board_flushed_ = TrainClock::now();
}

// Learning rate per group: the base, and each --lr-mult pattern's (`lr` times its factor).
void TrainingRun::board_learning_rates(const std::string& prefix, int64_t step, double lr) {
  TensorBoard* tb = board();
  tb->scalar(prefix + "lr", step, lr);
  for (const auto& [pattern, factor] : o_.lr_mult) tb->scalar(prefix + "lr/" + pattern, step, lr * factor);
}

void TrainingRun::board_step() {
  TensorBoard* tb = board();
  if (!tb) return;
  const Metrics now = ex_.read_metrics();  // this rank's sums (rank 0's shard with several)
  const double count = now.count - board_metrics_.count;
  if (count <= 0) return;
  const double seconds = std::max(seconds_since(board_time_), 1e-9);
  tb->scalar("step/loss", at_.step, (now.loss_sum - board_metrics_.loss_sum) / count);
  tb->scalar("step/accuracy", at_.step, (now.correct - board_metrics_.correct) / count);
  tb->scalar("step/images_per_second", at_.step, count / seconds);
  tb->scalar("step/peak_memory_bytes", at_.step, double(model_.pool().stats().peak_bytes_in_use));
  board_learning_rates("step/", at_.step, lr_);
  board_metrics_ = now;
  board_time_ = TrainClock::now();
  // A live TensorBoard sees the steps within seconds, and a killed run loses no more.
  if (seconds_since(board_flushed_) > 5) {
    tb->flush();
    board_flushed_ = board_time_;
  }
}

void TrainingRun::board_epoch(const EpochReport& r, const ValidationExamples* examples) {
  TensorBoard* tb = board();
  if (!tb) return;
  const int64_t e = r.epoch;
  tb->scalar("epoch/loss", e, r.train.loss());
  tb->scalar("epoch/accuracy", e, r.train.accuracy());
  if (r.validation) {
    tb->scalar("epoch/val_loss", e, r.validation->loss());
    tb->scalar("epoch/val_accuracy", e, r.validation->accuracy());
  }
  tb->scalar("epoch/images_per_second", e, r.images_per_second);
  tb->scalar("epoch/peak_memory_bytes", e, double(model_.pool().stats().peak_bytes_in_use));
  board_learning_rates("epoch/", e, r.lr);

  if (examples) {
    const auto& names = data_.class_names();
    std::ostringstream legend;
    legend << "Rows: true class, columns: predicted, each row scaled to its count (white 0, dark blue all). Classes:";
    for (size_t c = 0; c < names.size(); ++c) legend << (c ? ", " : " ") << c << " " << names[c];
    tb->image("val/confusion_matrix", e, confusion_heat_map(examples->confusion), legend.str());
    if (!examples->misclassified.empty() && !examples->misclassified[0].input.empty()) {
      std::ostringstream caption;
      caption << "The first " << examples->misclassified.size() << " misclassified validation images, row by row:";
      for (size_t k = 0; k < examples->misclassified.size(); ++k) {
        const auto& m = examples->misclassified[k];
        caption << "\n" << k + 1 << ". #" << m.index << " true " << names[size_t(m.label)] << ", predicted "
                << names[size_t(m.predicted)];
      }
      tb->image("val/misclassified", e, misclassified_grid(*examples), caption.str());
    }
  }

  const float* host = model_.host_params();
  for (const auto& s : segments_)
    for (const auto& p : model_.params())
      if (p.name == s.name) tb->histogram("weights/" + s.name, e, host + p.offset, s.count);
  tb->flush();
  board_metrics_ = {};
  board_time_ = board_flushed_ = TrainClock::now();
}

}  // namespace graft
