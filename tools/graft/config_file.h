// `graft train --config run.yaml` (or .json): every flag from a file, as `flag: value`
// (long names, with or without dashes or with underscores; lists for repeatable flags;
// true/false for switches). Flags given on the command line override the file; an unknown
// key is an error naming it. The resolved configuration is written back as JSON, beside
// the checkpoint, in the same form, so `--config model.safetensors.config.json` reruns it.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace graft::cli {

// Replaces `--config FILE` in a subcommand's arguments (argv without the program name)
// by the file's flags, for every flag the command line does not already give.
std::vector<std::string> expand_config(const CLI::App& sub, const std::vector<std::string>& args);

// The subcommand's options after parsing, as JSON (set values, and defaults of the rest).
std::string resolved_config(const CLI::App& sub);

}  // namespace graft::cli
