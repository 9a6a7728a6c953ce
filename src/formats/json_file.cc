#include "formats/json_file.h"

#include <fstream>

#include "core/mapped_file.h"

namespace brisk {

Result<Json> parse_json(std::string_view text, const std::string& what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return make_error(what + ": malformed JSON: " + e.what());
  }
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
