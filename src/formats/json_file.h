// JSON files read with errors that name the file and the position (nlohmann's exceptions stop here).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace brisk {

using Json = nlohmann::json;

Result<Json> read_json_file(const std::filesystem::path& path);
Result<Json> parse_json(std::string_view text, const std::string& what);  // what: "file.json"
// Writes (truncates) a text file; errors name the path.
Status write_text_file(const std::filesystem::path& path, const std::string& text);

}  // namespace brisk
