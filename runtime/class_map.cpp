// <checkpoint>.classes.json: write atomically, read with validation; --classes-file (that JSON
// or one name per line) and names by index.
#include "runtime/class_map.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "runtime/atomic_file.h"
#include "base/error.h"

namespace graft {

namespace {

void validate(const std::vector<std::string>& classes, const std::string& path) {
  if (classes.empty()) fail("class map ", path, ": the class list is empty");
  std::set<std::string> seen;
  for (size_t i = 0; i < classes.size(); ++i) {
    if (classes[i].empty()) fail("class map ", path, ": class ", i, " has an empty name");
    if (!seen.insert(classes[i]).second) fail("class map ", path, ": class '", classes[i], "' appears more than once");
  }
}

}  // namespace

std::string class_map_path(const std::string& checkpoint) { return checkpoint + ".classes.json"; }

void write_class_map(const std::string& path, const std::vector<std::string>& classes) {
  validate(classes, path);
  nlohmann::json j;
  j["classes"] = classes;
  const std::string text = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_file_atomic(path, {text});
}

std::vector<std::string> read_class_map(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("class map ", path, ": cannot open (it is written next to the checkpoint when training on an image folder)");
  std::stringstream buf;
  buf << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(buf.str());
  } catch (const nlohmann::json::exception& e) {
    fail("class map ", path, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object() || !j.contains("classes"))
    fail("class map ", path, ": expected an object {\"classes\": [\"name\", ...]}");
  const auto& arr = j["classes"];
  if (!arr.is_array()) fail("class map ", path, ": \"classes\" must be an array of strings");
  std::vector<std::string> classes;
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string()) fail("class map ", path, ": class ", i, " is not a string (", arr[i].dump(), ")");
    classes.push_back(arr[i].get<std::string>());
  }
  validate(classes, path);
  return classes;
}

std::vector<std::string> read_class_names_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--classes-file ", path, ": cannot open (give one class name per line, or a graft class map JSON)");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') return read_class_map(path);
  std::vector<std::string> classes;
  std::istringstream lines(text);
  size_t blank_at = 0;  // line number of the first blank line not yet followed by a name
  size_t number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (!blank_at) blank_at = number;
      continue;
    }
    if (blank_at)
      fail("--classes-file ", path, ": line ", blank_at, " is blank between class names (each line names the class of ",
           "its index; remove the blank line or name that class)");
    classes.push_back(line);
  }
  if (classes.empty()) fail("--classes-file ", path, ": names no classes (give one class name per line)");
  validate(classes, path);
  return classes;
}

std::vector<std::string> index_class_names(int n) {
  std::vector<std::string> names;
  names.reserve(size_t(std::max(n, 0)));
  for (int i = 0; i < n; ++i) names.push_back("class " + std::to_string(i));
  return names;
}

}  // namespace graft
