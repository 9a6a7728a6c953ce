#include "tokenizer/post_processor.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"

namespace brisk {
namespace {

Result<std::vector<int32_t>> special_token_ids(const nlohmann::json& config, const std::string& name,
                                               const std::string& where) {
  const auto specials = config.find("special_tokens");
  if (specials == config.end() || !specials->is_object() || !specials->contains(name)) {
    return make_error(where + ".special_tokens: no entry for '" + name + "'");
  }
  const nlohmann::json& entry = (*specials)[name];
  const auto ids = entry.find("ids");
  if (ids == entry.end() || !ids->is_array()) {
    return make_error(where + ".special_tokens." + name + ".ids: expected an array");
  }
  std::vector<int32_t> out;
  for (const auto& id : *ids) {
    BRISK_ASSIGN(checked, json_fields::token_id(id, where + ".special_tokens." + name + ".ids"));
    out.push_back(checked);
  }
  return out;
}

Status parse_template(const nlohmann::json& config, const std::string& where, SpecialTokenTemplate& result) {
  const auto single = config.find("single");
  if (single == config.end() || !single->is_array()) {
    return make_error(where + ".single: expected an array");
  }
  bool after_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const nlohmann::json& item = (*single)[i];
    const std::string item_where = where + ".single[" + std::to_string(i) + "]";
    if (item.contains("Sequence")) {
      after_sequence = true;
    } else if (item.contains("SpecialToken") && item["SpecialToken"].is_object()) {
      BRISK_ASSIGN(name, json_fields::string(item["SpecialToken"], "id", item_where));
      BRISK_ASSIGN(ids, special_token_ids(config, name, where));
      auto& target = after_sequence ? result.suffix : result.prefix;
      target.insert(target.end(), ids.begin(), ids.end());
    } else {
      return make_error(item_where + ": expected a Sequence or SpecialToken item");
    }
  }
  return ok_status();
}

// Roberta/Bert store {"cls": ["<s>", 0], "sep": ["</s>", 2]}.
Result<int32_t> named_pair_id(const nlohmann::json& config, const char* key, const std::string& where) {
  const auto it = config.find(key);
  if (it == config.end() || !it->is_array() || it->size() != 2) {
    return make_error(where + "." + key + ": expected [token, id]");
  }
  return json_fields::token_id((*it)[1], where + "." + key + "[1]");
}

Status append_processor(const nlohmann::json& config, const std::string& where,
                        SpecialTokenTemplate& result) {
  BRISK_ASSIGN(type, json_fields::type_tag(config, where));
  if (type == "TemplateProcessing") return parse_template(config, where, result);
  if (type == "ByteLevel") return ok_status();
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    BRISK_ASSIGN(cls, named_pair_id(config, "cls", where));
    BRISK_ASSIGN(sep, named_pair_id(config, "sep", where));
    result.prefix.push_back(cls);
    result.suffix.push_back(sep);
    return ok_status();
  }
  if (type == "Sequence") {
    const auto it = config.find("processors");
    if (it == config.end() || !it->is_array()) {
      return make_error(where + ".processors: expected an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      BRISK_TRY(append_processor((*it)[i], where + ".processors[" + std::to_string(i) + "]", result));
    }
    return ok_status();
  }
  return make_error(where + ".type: unsupported post_processor '" + type + "'");
}

}  // namespace

Result<SpecialTokenTemplate> parse_post_processor(const nlohmann::json& config, const std::string& where) {
  SpecialTokenTemplate result;
  if (!config.is_null()) BRISK_TRY(append_processor(config, where, result));
  return result;
}

Result<SpecialTokenIds> apply_tokenizer_config(const TokenizerConfig& config, const TokenLookup& token_to_id,
                                               SpecialTokenTemplate& specials, const std::string& where) {
  SpecialTokenIds ids;
  if (config.bos_token) {
    ids.bos = token_to_id(*config.bos_token);
    if (!ids.bos) return make_error(where + "bos_token: '" + *config.bos_token + "' is not a token");
  } else if (!specials.prefix.empty()) {
    ids.bos = specials.prefix.front();
  }
  if (config.eos_token) {
    ids.eos = token_to_id(*config.eos_token);
    if (!ids.eos) return make_error(where + "eos_token: '" + *config.eos_token + "' is not a token");
  }
  auto set_presence = [](std::vector<int32_t>& list, std::optional<int32_t> id, bool wanted, bool at_front) {
    if (!id) return;
    const auto it = std::find(list.begin(), list.end(), *id);
    if (!wanted && it != list.end()) list.erase(it);
    if (wanted && it == list.end()) list.insert(at_front ? list.begin() : list.end(), *id);
  };
  if (config.add_bos_token) set_presence(specials.prefix, ids.bos, *config.add_bos_token, true);
  if (config.add_eos_token) set_presence(specials.suffix, ids.eos, *config.add_eos_token, false);
  return ids;
}

}  // namespace brisk
