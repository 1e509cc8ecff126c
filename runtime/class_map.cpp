// <checkpoint>.classes.json: write atomically, read with validation.
#include "runtime/class_map.h"

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

}  // namespace graft
