// Sequence files (docs/data.md): labelled sequences in text, one example per line,
// "LABEL<TAB>3 12 7 431" (token ids) or "LABEL<TAB>0.1,0.5;0.2,0.4" (steps of float features),
// read into a Dataset [N, steps, features] with per-example lengths, padded with zeros.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dataset.h"

namespace graft {

struct SequenceReadOptions {
  int max_steps = 0;                     // > 0: keep each sequence's first max_steps steps
  int64_t vocab = 0;                     // > 0: token ids must be below it
  std::vector<std::string> class_names;  // non-empty: these classes (else the header's, else
                                         // "class 0".."class L" for the largest label L)
  // graft predict: a line without a tab is a sequence with no label, and a label before a
  // tab is skipped unread (every example's label is 0).
  bool unlabelled = false;
};

struct SequenceFile {
  Dataset data;             // images [N, steps, features], lengths per example
  bool tokens = false;      // token ids ([steps, 1]) rather than feature vectors
  int64_t truncated = 0;    // examples --max-steps cut
  int64_t longest = 0;      // the longest sequence in the file, before any cut
  std::vector<int64_t> lines;  // each example's line number in the file (1-based)
};

// "seq:PATH" or a path ending in .seq: a sequence file for --data / --val.
bool is_sequence_file(const std::string& spec);
// The path of a sequence-file spec (without "seq:").
std::string sequence_file_path(const std::string& spec);

// Reads and validates the whole file. Errors name the file, the line and what is wrong:
// no tab after the label, a label that is not a class, an empty sequence, a non-number,
// feature counts that differ from the file's first example, a token id outside the vocabulary.
SequenceFile read_sequence_file(const std::string& path, const SequenceReadOptions& options = {});

// Pads every example with zero steps up to `steps` (at least its current steps); lengths
// unchanged. Train and validation data share one input shape so.
Dataset pad_steps(Dataset d, int64_t steps);

// A stratified split for --val-split: within each class, round(fraction * count) examples
// drawn with `seed` (at least one, and at least one left) go to `second`; both keep the order.
struct HeldOut {
  Dataset first, second;
};
HeldOut hold_out(const Dataset& d, double fraction, uint64_t seed);

// "truncated 12 of 900 sequences to --max-steps 64 (kept the first 64 steps; the longest had 311)",
// or "" when nothing was cut; `cap` names the limit when it is not --max-steps.
std::string truncation_note(const SequenceFile& f, int max_steps, const std::string& cap = "");

}  // namespace graft
