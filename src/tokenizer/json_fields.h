// Typed reads of tokenizer.json fields whose errors name the field (`where` is the path so far,
// e.g. "llama/tokenizer.json: pre_tokenizer.pretokenizers[0]").
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "core/error.h"

namespace brisk::json_fields {

using Json = nlohmann::json;

// Parses a whole JSON file; errors name the file (and the parser's position).
inline Result<Json> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path.string() + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return Json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    return make_error(path.string() + ": invalid JSON: " + e.what());
  }
}

inline std::string field(const std::string& where, const char* key) { return where + "." + key; }

// A member of an object, or null when absent (or when `object` is not an object).
inline const Json& member(const Json& object, const char* key) {
  static const Json null_value;
  if (!object.is_object()) return null_value;
  const auto it = object.find(key);
  return it == object.end() ? null_value : *it;
}

// A required string member.
inline Result<std::string> string(const Json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return make_error(field(where, key) + ": expected a string");
  }
  return it->get<std::string>();
}

// A string member that may be absent or null.
inline Result<std::optional<std::string>> optional_string(const Json& object, const char* key,
                                                          const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return make_error(field(where, key) + ": expected a string or null");
  return std::optional<std::string>(it->get<std::string>());
}

// A boolean member with a default for absent/null.
inline Result<bool> boolean(const Json& object, const char* key, bool fallback, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return make_error(field(where, key) + ": expected true or false");
  return it->get<bool>();
}

// A non-negative integer member with a default for absent/null.
inline Result<int64_t> count(const Json& object, const char* key, int64_t fallback,
                             const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return make_error(field(where, key) + ": expected a non-negative integer");
  }
  return it->get<int64_t>();
}

// Token ids size tables (id -> token), so one stray id of 2^31-1 asked for gigabytes and its
// id + 1 overflowed. Ids are bounded as config.json's vocab_size is (models/model_config.cc: 2^22,
// ten times the largest vocabularies published).
inline constexpr int64_t kMaxTokenId = (int64_t(1) << 22) - 1;

// A token id: an integer in [0, kMaxTokenId]. `what` names the value in the error.
inline Result<int32_t> token_id(const Json& value, const std::string& what) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxTokenId) {
    return make_error(what + ": expected a token id (an integer from 0 to " + std::to_string(kMaxTokenId) +
                      "), got " + (value.is_number() ? value.dump() : std::string(value.type_name())));
  }
  return static_cast<int32_t>(value.get<int64_t>());
}

// The "type" tag every tokenizers component carries.
inline Result<std::string> type_tag(const Json& object, const std::string& where) {
  if (!object.is_object()) return make_error(where + ": expected an object");
  return string(object, "type", where);
}

}  // namespace brisk::json_fields
