#include "formats/config_fields.h"

#include <cmath>
#include <cstdint>

namespace brisk {

bool ConfigFields::has(const char* key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

Error ConfigFields::error(const std::string& key, const std::string& what) const {
  return make_error(where_ + ": field '" + key + "' " + what);
}

Result<int64_t> ConfigFields::integer(const char* key) const {
  auto it = json_.find(key);
  if (it == json_.end() || it->is_null()) return make_error(where_ + ": missing field '" + key + "'");
  if (!it->is_number_integer() || it->get<int64_t>() <= 0)
    return error(key, "must be a positive integer, got " + json_excerpt(*it));
  return it->get<int64_t>();
}

Result<int64_t> ConfigFields::integer_or(const char* key, int64_t fallback) const {
  if (!has(key)) return fallback;
  return integer(key);
}

Result<double> ConfigFields::number_or(const char* key, double fallback) const {
  if (!has(key)) return fallback;
  const Json& v = json_.at(key);
  if (!v.is_number()) return error(key, "must be a number, got " + json_excerpt(v));
  return v.get<double>();
}

Result<double> ConfigFields::positive_number_or(const char* key, double fallback) const {
  BRISK_ASSIGN(v, number_or(key, fallback));
  if (!(v > 0) || !std::isfinite(v))
    return error(key, "must be a positive finite number, got " + json_excerpt(json_.at(key)));
  return v;
}

Result<std::optional<double>> ConfigFields::optional_number(const char* key) const {
  if (!has(key)) return std::optional<double>();
  BRISK_ASSIGN(v, number_or(key, 0.0));
  return std::optional<double>(v);
}

Result<bool> ConfigFields::boolean_or(const char* key, bool fallback) const {
  if (!has(key)) return fallback;
  const Json& v = json_.at(key);
  if (!v.is_boolean()) return error(key, "must be true or false, got " + json_excerpt(v));
  return v.get<bool>();
}

Result<std::string> ConfigFields::string_or(const char* key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const Json& v = json_.at(key);
  if (!v.is_string()) return error(key, "must be a string, got " + json_excerpt(v));
  return v.get<std::string>();
}

Result<const Json*> ConfigFields::object_or_null(const char* key) const {
  if (!has(key)) return static_cast<const Json*>(nullptr);
  const Json& v = json_.at(key);
  if (!v.is_object()) return error(key, "must be an object, got " + json_excerpt(v));
  return &v;
}

Result<std::vector<double>> ConfigFields::numbers(const char* key) const {
  if (!has(key)) return make_error(where_ + ": missing field '" + key + "'");
  const Json& v = json_.at(key);
  if (!v.is_array()) return error(key, "must be an array of numbers, got " + json_excerpt(v));
  std::vector<double> out;
  for (const Json& x : v) {
    if (!x.is_number()) return error(key, "must be an array of numbers, got element " + json_excerpt(x));
    out.push_back(x.get<double>());
  }
  return out;
}

Result<std::vector<std::string>> ConfigFields::strings_or_empty(const char* key) const {
  std::vector<std::string> out;
  if (!has(key)) return out;
  const Json& v = json_.at(key);
  if (!v.is_array()) return error(key, "must be an array of strings, got " + json_excerpt(v));
  for (const Json& x : v) {
    if (!x.is_string()) return error(key, "must be an array of strings, got element " + json_excerpt(x));
    out.push_back(x.get<std::string>());
  }
  return out;
}

Result<std::vector<int32_t>> ConfigFields::token_ids(const char* key) const {
  std::vector<int32_t> ids;
  if (!has(key) || json_.at(key).is_null()) return ids;
  const Json& v = json_.at(key);
  const Json list = v.is_array() ? v : Json::array({v});
  for (const Json& x : list) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      return error(key, "must be a token id or a list of token ids, got " + json_excerpt(v));
    ids.push_back(int32_t(x.get<int64_t>()));
  }
  return ids;
}

}  // namespace brisk
