// In-memory labelled image datasets (Fashion-MNIST now, image folders later), the class
// and few-shot selections the transfer demo needs, and seeded batch order.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace graft {

struct Dataset {
  HostTensor images;                     // [N, H, W, C], normalized floats
  std::vector<int32_t> labels;           // 0 .. num_classes-1
  std::vector<std::string> class_names;  // class_names.size() == number of classes
  std::string origin;                    // where it came from, for messages
  // Sequences (images [N, steps, features]): each example's number of real steps, 1..steps,
  // the rest zero padding. Empty: every example has all its steps (and images).
  std::vector<int32_t> lengths;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int num_classes() const { return static_cast<int>(class_names.size()); }
  int64_t image_numel() const { return size() ? images.numel() / size() : 0; }
};

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Loads the train or test split from `dir` (train-images-idx3-ubyte[.gz], ...), pixels
// scaled to [0, 1], shape [N, 28, 28, 1]. Errors name the missing or broken file and say
// how to get it (apt-get install dataset-fashion-mnist).
Dataset load_fashion_mnist(const std::string& dir, bool train);

// "0-4", "5,7,9", "0-2,8": class indices, validated against num_classes; errors name `flag`.
std::vector<int> parse_class_list(const std::string& spec, int num_classes, const std::string& flag);

// Keeps the given classes, in the given order, relabelled 0..k-1.
Dataset select_classes(const Dataset& d, const std::vector<int>& classes);

// K examples per class, drawn with `seed`; the result keeps the dataset order. An error
// names the class and how many it holds when one has fewer than K.
Dataset few_shot(const Dataset& d, int per_class, uint64_t seed);

// The order of one epoch: 0..n-1, shuffled by (seed, epoch) when `shuffle`.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle);

// Copies the images and labels of `indices` into a batch buffer.
void gather_batch(const Dataset& d, std::span<const int64_t> indices, float* images, int32_t* labels);

}  // namespace graft
