#include "tokenizer/tokenizer_config.h"

#include "core/mapped_file.h"
#include "tokenizer/json_fields.h"

namespace brisk {
namespace {

// bos_token/eos_token are a string, null, or an AddedToken object {"content": ...}.
Result<std::optional<std::string>> token_name(const nlohmann::json& config, const char* key,
                                              const std::string& where) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    BRISK_ASSIGN(content, json_fields::string(*it, "content", where + key));
    return std::optional<std::string>(content);
  }
  return make_error(where + key + ": expected a string or {\"content\": ...}");
}

Result<std::optional<bool>> optional_flag(const nlohmann::json& config, const char* key,
                                          const std::string& where) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return make_error(where + key + ": expected true or false");
  return std::optional<bool>(it->get<bool>());
}

}  // namespace

Result<TokenizerConfig> read_tokenizer_config(const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "tokenizer_config.json";
  TokenizerConfig config;
  if (!path_exists(path)) return config;
  BRISK_ASSIGN(json, json_fields::read_file(path));
  const std::string where = path.string() + ": ";
  if (!json.is_object()) return make_error(where + "expected a JSON object");
  BRISK_ASSIGN(bos, token_name(json, "bos_token", where));
  BRISK_ASSIGN(eos, token_name(json, "eos_token", where));
  BRISK_ASSIGN(add_bos, optional_flag(json, "add_bos_token", where));
  BRISK_ASSIGN(add_eos, optional_flag(json, "add_eos_token", where));
  config.bos_token = bos;
  config.eos_token = eos;
  config.add_bos_token = add_bos;
  config.add_eos_token = add_eos;
  return config;
}

}  // namespace brisk
