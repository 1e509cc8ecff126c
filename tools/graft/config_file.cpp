// YAML/JSON run configuration through yaml-cpp (YAML is a superset of JSON).
#include "tools/graft/config_file.h"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"

namespace graft::cli {

namespace {

std::string normal_key(std::string key) {
  while (!key.empty() && key.front() == '-') key.erase(key.begin());
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

// Long flag names the command line already sets ("--lr 3", "--lr=3").
std::set<std::string> given_flags(const std::vector<std::string>& args) {
  std::set<std::string> given;
  for (const auto& a : args)
    if (a.size() > 2 && a.rfind("--", 0) == 0) given.insert(a.substr(2, a.find('=') - 2));
  return given;
}

}  // namespace

std::vector<std::string> expand_config(const CLI::App& sub, const std::vector<std::string>& args) {
  std::vector<std::string> out;
  std::string path;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) fail("--config needs a file name");
      path = args[++i];
    } else if (args[i].rfind("--config=", 0) == 0) {
      path = args[i].substr(9);
    } else {
      out.push_back(args[i]);
    }
  }
  if (path.empty()) return out;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail("--config ", path, ": cannot read the file");
  } catch (const YAML::Exception& e) {
    fail("--config ", path, ": not valid YAML or JSON: ", e.what());
  }
  if (root.IsNull()) return out;
  if (!root.IsMap()) fail("--config ", path, ": expected a mapping of flag names to values, e.g. `lr: 0.001`");
  const auto given = given_flags(out);
  std::vector<std::string> unknown;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) fail("--config ", path, ": every key must be a flag name, e.g. `lr: 0.001`");
    const std::string key = normal_key(kv.first.Scalar());
    const CLI::Option* opt = sub.get_option_no_throw("--" + key);
    if (!opt || key == "config" || key == "help") {
      unknown.push_back(kv.first.Scalar());
      continue;
    }
    if (given.count(key)) continue;  // the command line wins
    const YAML::Node& value = kv.second;
    if (opt->get_items_expected_max() == 0) {  // a switch
      if (!value.IsScalar()) fail("--config ", path, ": '", key, "' is a switch: give true or false");
      const std::string v = value.Scalar();
      if (v == "true" || v == "yes" || v == "on") {
        out.push_back("--" + key);
      } else if (v != "false" && v != "no" && v != "off") {
        fail("--config ", path, ": '", key, "' is a switch: give true or false, not '", v, "'");
      }
      continue;
    }
    if (value.IsSequence() && value.size() == 0) continue;
    out.push_back("--" + key);
    if (value.IsSequence()) {
      if (opt->get_expected_max() <= 1) fail("--config ", path, ": '", key, "' takes one value, not a list");
      for (const auto& v : value) {
        if (!v.IsScalar()) fail("--config ", path, ": '", key, "' must be a list of plain values");
        out.push_back(v.Scalar());
      }
    } else if (value.IsScalar()) {
      out.push_back(value.Scalar());
    } else {
      fail("--config ", path, ": '", key, "' must be a value or a list of values");
    }
  }
  if (!unknown.empty()) {
    std::string names;
    for (const auto& u : unknown) names += (names.empty() ? "'" : ", '") + u + "'";
    fail("--config ", path, ": unknown key", unknown.size() > 1 ? "s " : " ", names, "; keys are the flags of graft ",
         sub.get_name(), " (see graft ", sub.get_name(), " --help)");
  }
  return out;
}

std::string resolved_config(const CLI::App& sub) {
  nlohmann::json j = nlohmann::json::object();
  for (const CLI::Option* opt : sub.get_options()) {
    if (opt->get_lnames().empty()) continue;
    const std::string name = opt->get_lnames()[0];
    // --resume continues a run; it is not part of the run's configuration.
    if (name == "help" || name == "config" || name == "resume") continue;
    const auto results = opt->results();
    if (opt->get_items_expected_max() == 0) {  // a switch
      j[name] = opt->count() > 0;
    } else if (opt->get_expected_max() > 1) {
      if (!results.empty()) j[name] = results;
    } else if (opt->count() > 0 && !results.empty()) {
      j[name] = results.back();
    } else if (!opt->get_default_str().empty()) {
      j[name] = opt->get_default_str();
    }
  }
  // Flag values are bytes from the user (paths may not be UTF-8): replace what JSON cannot hold.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace graft::cli
