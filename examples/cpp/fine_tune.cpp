// graft inside a pipeline: an instrument (here, a generator) produces labelled 28x28 frames
// in memory; a frozen fmnist_cnn base with a fresh head is fine-tuned on them, no files in
// between. Prints the loss falling, then accuracy on frames it has not seen.
//   fine_tune [steps] [checkpoint to start from]
#include <graft/graft.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

constexpr int kClasses = 4;
constexpr int kBatch = 32;
constexpr int kSide = 28;

// One frame per example: a bright bar whose orientation is the class, plus noise.
void generate(std::mt19937& rng, std::vector<float>& images, std::vector<int32_t>& labels) {
  std::normal_distribution<float> noise(0.0f, 0.15f);
  std::uniform_int_distribution<int> cls(0, kClasses - 1), offset(-6, 6);
  for (int i = 0; i < kBatch; ++i) {
    const int c = cls(rng), o = offset(rng);
    labels[size_t(i)] = c;
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) {
        const int u = x - kSide / 2, v = y - kSide / 2;
        const int d = c == 0 ? v - o : c == 1 ? u - o : c == 2 ? u - v - o : u + v - o;
        images[size_t((i * kSide + y) * kSide + x)] = (std::abs(d) <= 1 ? 1.0f : 0.0f) + noise(rng);
      }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 60;
  try {
    std::printf("graft %s\n", graft::api::version().c_str());
    graft::api::ModelSpec spec;
    spec.architecture = "fmnist_cnn";
    spec.input = {kSide, kSide, 1};
    spec.classes = kClasses;
    spec.head = "flatten,dense:64,relu,dense:N";  // a fresh head on the convolutional base
    spec.seed = 7;
    graft::api::Model model(spec);
    if (argc > 2) {  // a pretrained base (graft train --save ...): load what matches
      const auto report = model.load(argv[2]);
      std::printf("loaded %zu tensors from %s\n", report.loaded.size(), argv[2]);
    }
    model.freeze({"conv*"});

    graft::api::TrainSettings settings;
    settings.batch = kBatch;
    settings.optimizer.kind = "adam";
    settings.optimizer.lr = 2e-3f;
    model.configure(settings);
    const auto plan = model.planned_memory();
    std::printf("planned memory: %zu bytes (parameters %zu, gradients %zu, activations %zu)\n", plan.peak,
                plan.parameters, plan.gradients, plan.activations);

    std::mt19937 rng(1);
    std::vector<float> images(size_t(kBatch) * kSide * kSide);
    std::vector<int32_t> labels(kBatch);
    graft::api::Batch batch;
    batch.images = images.data();
    batch.labels = labels.data();
    batch.shape = {kBatch, kSide, kSide, 1};
    double first = 0, recent = 0;
    for (int s = 1; s <= steps; ++s) {
      generate(rng, images, labels);
      const auto r = model.train_step(batch);
      if (s == 1) first = r.loss;
      recent = s == 1 ? r.loss : 0.9 * recent + 0.1 * r.loss;
      if (s == 1 || s % 10 == 0) std::printf("step %3d  loss %.4f\n", s, r.loss);
    }
    generate(rng, images, labels);
    const auto m = model.evaluate(batch);
    std::printf("held-out batch: loss %.4f, accuracy %.3f\n", m.loss, m.accuracy);
    if (!(recent < first)) {
      std::fprintf(stderr, "the loss did not fall (%.4f -> %.4f)\n", first, recent);
      return 1;
    }
    return 0;
  } catch (const graft::api::Error& e) {
    std::fprintf(stderr, "graft: %s\n", e.what());
    return 1;
  }
}
