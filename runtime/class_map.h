// The class list saved next to a checkpoint, so prediction and evaluation name classes the
// way training saw them: <checkpoint>.classes.json = {"classes": ["cat", "dog"]}.
#pragma once
#include <string>
#include <vector>

namespace graft {

// "<checkpoint>.classes.json".
std::string class_map_path(const std::string& checkpoint);

// Writes {"classes": [...]} atomically. Throws graft::Error naming the path when a name is
// empty or repeated, or the write fails.
void write_class_map(const std::string& path, const std::vector<std::string>& classes);

// Reads and validates the file: a JSON object whose "classes" is a non-empty array of
// unique non-empty strings. Errors name the path and what is wrong.
std::vector<std::string> read_class_map(const std::string& path);

}  // namespace graft
