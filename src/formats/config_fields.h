// Typed reads of a JSON object's fields (config.json and friends) whose errors name the file and
// the field. No knowledge of any model: architectures say which fields they read.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/json_file.h"

namespace brisk {

class ConfigFields {
 public:
  ConfigFields(const Json& json, std::string where) : json_(json), where_(std::move(where)) {}

  const Json& json() const { return json_; }
  const std::string& where() const { return where_; }
  bool has(const char* key) const;

  Result<int64_t> integer(const char* key) const;  // required, positive
  Result<int64_t> integer_or(const char* key, int64_t fallback) const;
  Result<double> number_or(const char* key, double fallback) const;
  Result<double> positive_number_or(const char* key, double fallback) const;  // finite and > 0 (epsilons)
  // A number, or null / absent (nullopt): soft-capping and similar optional settings.
  Result<std::optional<double>> optional_number(const char* key) const;
  Result<bool> boolean_or(const char* key, bool fallback) const;
  Result<std::string> string_or(const char* key, const std::string& fallback) const;
  // An object, or null / absent (nullptr).
  Result<const Json*> object_or_null(const char* key) const;
  Result<std::vector<double>> numbers(const char* key) const;  // a required array of numbers
  Result<std::vector<std::string>> strings_or_empty(const char* key) const;
  // A token id or a list of them (bos/eos_token_id); absent or null: none.
  Result<std::vector<int32_t>> token_ids(const char* key) const;
  // An error about this object's field `key`.
  Error error(const std::string& key, const std::string& what) const;

 private:
  const Json& json_;
  std::string where_;
};

}  // namespace brisk
