#pragma once
// JSON reports of the command-line programs.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string_view>

namespace infield::apps {

/// Writes `json` (indented) to `path` atomically: a temporary file in the same directory, then a
/// rename, so a reader never sees half a report. Throws FileError naming `command` on failure.
void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& json,
                       std::string_view command);

}  // namespace infield::apps
