#include "formats/json_file.h"

#include <fstream>

#include "core/mapped_file.h"

namespace brisk {

Result<Json> parse_json(std::string_view text, const std::string& what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return make_error(what + ": malformed JSON: " + e.what());
  } catch (const Json::exception& e) {  // out_of_range: a number beyond double (1e999)
    return make_error(what + ": malformed JSON: " + e.what());
  }
}

std::string json_excerpt(const Json& value) {
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " elements";
  if (value.is_object()) return "an object of " + std::to_string(value.size()) + " members";
  // Strings built from binary files (GGUF metadata) may hold invalid UTF-8, which dump() rejects.
  // A hostile value (a 100,000-character string) is quoted by its start only.
  constexpr size_t kQuoted = 64;
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > kQuoted) text = text.substr(0, kQuoted) + "... (" + std::to_string(text.size()) + " characters)";
  return text;
}

Result<Json> read_json_file(const std::filesystem::path& path) {
  BRISK_ASSIGN(text, read_text_file(path));
  return parse_json(text, path.string());
}

Status write_text_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) return make_error(path.string() + ": write failed");
  return ok_status();
}

}  // namespace brisk
