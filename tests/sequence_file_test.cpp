// Sequence files (runtime/sequence_file.h): random files of token ids and of feature vectors
// read back exactly with their lengths and padding; every malformed line named by file and line.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "runtime/sequence_file.h"
#include "tests/graft_program.h"
#include "testing.h"

namespace graft {
namespace {

using testing::expect_error;
using testing::random_int;
using testing::TempDir;

struct Example {
  int label;
  std::vector<std::vector<float>> steps;  // [length][features]
};

// Random examples: `features` == 0 writes token ids (whole numbers below 1000), else floats.
std::vector<Example> random_examples(int n, int classes, int max_len, int features) {
  std::vector<Example> out(static_cast<size_t>(n));
  for (auto& e : out) {
    e.label = random_int(0, classes - 1);
    e.steps.resize(static_cast<size_t>(random_int(1, max_len)));
    for (auto& s : e.steps) {
      if (features == 0) {
        s = {static_cast<float>(random_int(0, 999))};
      } else {
        s.resize(static_cast<size_t>(features));
        for (auto& v : s) v = static_cast<float>(random_int(-100000, 100000)) / 1024.0f;  // exact in text
      }
    }
  }
  return out;
}

std::string format(const std::vector<Example>& examples, bool tokens, const std::string& eol) {
  std::ostringstream out;
  out.precision(9);
  for (const auto& e : examples) {
    out << e.label << '\t';
    for (size_t t = 0; t < e.steps.size(); ++t) {
      if (t) out << (tokens ? " " : ";");
      for (size_t f = 0; f < e.steps[t].size(); ++f) out << (f ? "," : "") << e.steps[t][f];
    }
    // The first example decides the kind: a closing ';' marks "0.5" as features, not a token.
    if (!tokens && &e == &examples.front()) out << ';';
    out << eol;
  }
  return out.str();
}

std::string write(const TempDir& dir, const std::string& text, const std::string& name = "data.seq") {
  const std::string path = dir.file(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

void expect_matches(const SequenceFile& f, const std::vector<Example>& examples, int features, int max_steps) {
  const Dataset& d = f.data;
  ASSERT_EQ(d.size(), static_cast<int64_t>(examples.size()));
  ASSERT_EQ(d.images.shape.rank(), 3);
  const int64_t steps = d.images.shape[1];
  ASSERT_EQ(d.images.shape[2], features);
  int64_t longest = 0, cut = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    const int64_t len = static_cast<int64_t>(e.steps.size());
    longest = std::max(longest, len);
    const int64_t kept = max_steps > 0 ? std::min<int64_t>(len, max_steps) : len;
    cut += kept < len;
    EXPECT_EQ(d.labels[i], e.label);
    ASSERT_EQ(d.lengths[i], kept) << "example " << i;
    const float* x = d.images.data() + i * size_t(steps * features);
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t c = 0; c < features; ++c) {
        const float want = t < kept ? e.steps[size_t(t)][size_t(c)] : 0.0f;  // zero padding after the end
        ASSERT_EQ(x[t * features + c], want) << "example " << i << " step " << t << " feature " << c;
      }
  }
  EXPECT_EQ(steps, max_steps > 0 ? std::min<int64_t>(longest, max_steps) : longest);
  EXPECT_EQ(f.longest, longest);
  EXPECT_EQ(f.truncated, cut);
}

TEST(SequenceFile, TokenIdsReadBackWithLengthsAndPadding) {
  TempDir dir;
  const auto examples = random_examples(random_int(20, 60), 4, 30, 0);
  const auto f = read_sequence_file(write(dir, format(examples, true, "\n")));
  EXPECT_TRUE(f.tokens);
  expect_matches(f, examples, 1, 0);
  int top = 0;
  for (const auto& e : examples) top = std::max(top, e.label);
  EXPECT_EQ(f.data.num_classes(), top + 1);  // no names: "class 0".."class top"
  EXPECT_EQ(f.data.class_names[0], "class 0");
}

TEST(SequenceFile, FeatureVectorsWithCrlfAndNoFinalNewline) {
  TempDir dir;
  const int features = random_int(1, 6);
  const auto examples = random_examples(random_int(10, 40), 3, 20, features);
  std::string text = format(examples, false, "\r\n");
  text.resize(text.size() - 2);  // the last line ends without a newline
  const auto f = read_sequence_file(write(dir, text));
  EXPECT_FALSE(f.tokens);
  expect_matches(f, examples, features, 0);
}

TEST(SequenceFile, MaxStepsKeepsTheFirstStepsAndCounts) {
  TempDir dir;
  const auto examples = random_examples(50, 3, 40, 2);
  const int cap = random_int(2, 20);
  const auto f = read_sequence_file(write(dir, format(examples, false, "\n")), {.max_steps = cap});
  expect_matches(f, examples, 2, cap);
  if (f.truncated > 0) {
    const std::string note = truncation_note(f, cap);
    EXPECT_NE(note.find("--max-steps " + std::to_string(cap)), std::string::npos) << note;
    EXPECT_NE(note.find("kept the first"), std::string::npos) << note;
  }
}

TEST(SequenceFile, ALongLineIsOneExample) {
  TempDir dir;
  const auto examples = random_examples(3, 2, 1, 0);
  auto big = examples;
  big[1].steps.assign(size_t(random_int(100000, 150000)), {7.0f});
  expect_matches(read_sequence_file(write(dir, format(big, true, "\n"))), big, 1, 0);
}

TEST(SequenceFile, HeaderOrClassesFileNamesTheClasses) {
  TempDir dir;
  const auto examples = random_examples(20, 3, 5, 0);
  const std::string body = format(examples, true, "\n");
  const auto f = read_sequence_file(write(dir, "#classes\tneg\tneutral\tpos\n# a comment\n\n" + body));
  EXPECT_EQ(f.data.class_names, (std::vector<std::string>{"neg", "neutral", "pos"}));
  expect_matches(f, examples, 1, 0);
  // A classes file (given as options) wins over the header.
  const auto g = read_sequence_file(write(dir, body, "b.seq"), {.class_names = {"a", "b", "c", "d"}});
  EXPECT_EQ(g.data.num_classes(), 4);
}

TEST(SequenceFile, ErrorsNameTheFileLineAndProblem) {
  TempDir dir;
  const int line = random_int(2, 9);
  // Good lines before the bad one, so the line number is checked.
  auto with_bad = [&](const std::string& bad, const std::string& good = "1\t1 2 3\n") {
    std::string text;
    for (int i = 1; i < line; ++i) text += good;
    return write(dir, text + bad + "\n" + good);
  };
  const std::string at = ":" + std::to_string(line) + ": ";
  std::string path = with_bad("2 5 6 7");
  expect_error([&] { read_sequence_file(path); }, {path + at, "no tab"});
  path = with_bad("x\t5 6");
  expect_error([&] { read_sequence_file(path); }, {path + at, "label 'x'"});
  path = with_bad("1\t   ");
  expect_error([&] { read_sequence_file(path); }, {path + at, "empty"});
  path = with_bad("1\t4 0.5 2");
  expect_error([&] { read_sequence_file(path); }, {path + at, "'0.5'", "token id"});
  path = with_bad("1\t4 12 2");
  expect_error([&] { read_sequence_file(path, {.vocab = 10}); }, {path + at, "token id 12", "vocabulary of 10"});
  path = with_bad("1\t0.1,0.2;0.3", "0\t1,2;3,4\n");
  expect_error([&] { read_sequence_file(path); }, {path + at, "step 2 has 1 features", "first step has 2"});
  path = with_bad("1\t0.1,abc", "0\t1,2;3,4\n");
  expect_error([&] { read_sequence_file(path); }, {path + at, "'abc' is not a number"});
  path = with_bad("1\t0.1,nan", "0\t1,2;3,4\n");
  expect_error([&] { read_sequence_file(path); }, {path + at, "not finite"});
  path = with_bad("1\t1,2;;3,4", "0\t1,2;3,4\n");
  expect_error([&] { read_sequence_file(path); }, {path + at, "step 2 is empty"});
  path = with_bad("1\t1,2", "0\t1 2\n");
  expect_error([&] { read_sequence_file(path); }, {path + at, "one kind"});
  path = with_bad("1\t1 2", "0\t1;2\n");  // in a file of one feature per step, spaces are no separator
  expect_error([&] { read_sequence_file(path); }, {path + at, "'1 2' is not a number"});
  path = with_bad("5\t1 2");
  expect_error([&] { read_sequence_file(path, {.class_names = {"a", "b"}}); },
               {path + at, "label 5 is out of range", "names 2 classes"});
  path = write(dir, "\n# only a comment\n", "empty.seq");
  expect_error([&] { read_sequence_file(path); }, {path, "no examples"});
  expect_error([&] { read_sequence_file(dir.file("missing.seq")); }, {"missing.seq", "cannot open"});
}

TEST(SequenceFile, RecognisedByExtensionOrPrefix) {
  EXPECT_TRUE(is_sequence_file("reviews.seq"));
  EXPECT_TRUE(is_sequence_file("seq:reviews.tsv"));
  EXPECT_FALSE(is_sequence_file("fashion-mnist"));
  EXPECT_FALSE(is_sequence_file("images/"));
  EXPECT_EQ(sequence_file_path("seq:a/b.tsv"), "a/b.tsv");
  EXPECT_EQ(sequence_file_path("a/b.seq"), "a/b.seq");
}

TEST(SequenceFile, PadAndHoldOutKeepLengthsAndClasses) {
  TempDir dir;
  const auto examples = random_examples(random_int(40, 80), 3, 12, 2);
  const Dataset d = read_sequence_file(write(dir, format(examples, false, "\n"))).data;
  const int64_t more = d.images.shape[1] + random_int(1, 5);
  const Dataset padded = pad_steps(d, more);
  EXPECT_EQ(padded.lengths, d.lengths);
  for (int64_t i = 0; i < d.size(); ++i)
    for (int64_t k = 0; k < more * 2; ++k) {
      const float want = k < d.images.shape[1] * 2 ? d.images.data()[i * d.image_numel() + k] : 0.0f;
      ASSERT_EQ(padded.images.data()[i * more * 2 + k], want);
    }
  const double fraction = random_int(1, 5) / 10.0;
  const HeldOut parts = hold_out(d, fraction, testing::test_seed());
  EXPECT_EQ(parts.first.size() + parts.second.size(), d.size());
  for (int c = 0; c < d.num_classes(); ++c) {
    const auto count = [c](const Dataset& x) { return std::count(x.labels.begin(), x.labels.end(), c); };
    if (count(d) < 2) continue;
    EXPECT_EQ(count(parts.second), std::clamp<int64_t>(std::llround(fraction * double(count(d))), 1, count(d) - 1))
        << "class " << c;
  }
  EXPECT_EQ(parts.first.lengths.size(), size_t(parts.first.size()));
}

TEST(SequenceFile, CliNamesBadDataAndMisplacedFlags) {
  TempDir dir;
  const std::string good = write(dir, "0\t1,2;3,4;5,6\n1\t1,1\n0\t1,1\n1\t2,2;1,1;0,0;3,3\n", "good.seq");
  const std::string bad = write(dir, "0\t1,2\n1\t1,2;3\n", "bad.seq");
  const std::string model = "--model lstm:4,last,dense:2 --epochs 1 --progress off ";
  auto r = testing::run_graft("train " + model + "--data " + bad);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find(bad + ":2: step 2 has 1 features"), std::string::npos) << r.output;
  r = testing::run_graft("train " + model + "--data seq:" + good + " --val test");
  EXPECT_NE(r.output.find("--val test is fashion-mnist's test split"), std::string::npos) << r.output;
  r = testing::run_graft("train " + model + "--data " + good + " --val " + dir.str());
  EXPECT_NE(r.output.find("validate on another sequence file"), std::string::npos) << r.output;
  r = testing::run_graft("train --max-steps 3 --epochs 1");
  EXPECT_NE(r.output.find("--max-steps applies to sequence files"), std::string::npos) << r.output;
  r = testing::run_graft("train " + model + "--data " + good + " --max-steps 2");
  EXPECT_NE(r.output.find("truncated 2 of 4 sequences"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 classes (class 0, class 1)"), std::string::npos) << r.output;
  // A sequence file's examples are called what they are.
  EXPECT_NE(r.output.find("data: 4 training sequences from"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" seq/s "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("img/s"), std::string::npos) << r.output;
  r = testing::run_graft("info --model lstm:4,last,dense:2 --data " + good);
  EXPECT_NE(r.output.find("input [64, 4, 2] (batch, steps, features)"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace graft
