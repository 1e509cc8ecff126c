// The class list saved next to a checkpoint, so prediction and evaluation name classes the
// way training saw them: <checkpoint>.classes.json = {"classes": ["cat", "dog"]}; and the
// other ways a class list reaches predict and eval (--classes-file, names by index).
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

// A --classes-file: the class map JSON above (the file starts with '{'), or plain text with
// one name per line (a trailing '\r' and trailing blank lines ignored; a blank line between
// names is an error, since it would shift every index after it). Validated as above.
std::vector<std::string> read_class_names_file(const std::string& path);

// "class 0" ... "class n-1": the names of a model's outputs when nothing names them.
std::vector<std::string> index_class_names(int n);

}  // namespace graft
