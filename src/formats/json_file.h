// JSON files read with errors that name the file and the position (nlohmann's exceptions stop here).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace brisk {

using Json = nlohmann::json;

Result<Json> read_json_file(const std::filesystem::path& path);
Result<Json> parse_json(std::string_view text, const std::string& what);  // what: "file.json"
// A JSON value as an error message quotes it: a scalar as written (its first 64 characters when
// longer), an array or object by its kind and size. dump() recurses once per nesting level: a
// 30,000-deep array in a config field overflowed the stack while its error message was built.
std::string json_excerpt(const Json& value);
// Writes (truncates) a text file; errors name the path.
Status write_text_file(const std::filesystem::path& path, const std::string& text);

}  // namespace brisk
