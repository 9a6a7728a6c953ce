// Reading tokenizer.json into a BpeTokenizer. Each component parses its own section; this file
// handles the model, the added tokens and the top-level layout.
#include <nlohmann/json.hpp>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/json_fields.h"

namespace brisk {
namespace {

using json_fields::member;
using nlohmann::json;

Result<std::vector<std::pair<std::string, std::string>>> parse_merges(const json& merges,
                                                                      const std::string& where) {
  if (!merges.is_array()) return make_error(where + ": expected an array");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& merge = merges[i];
    // Older files write "left right"; newer ones ["left", "right"] (tokens may contain spaces).
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return make_error(where + "[" + std::to_string(i) + "]: expected \"left right\", got '" + text + "'");
      }
      out.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      out.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    } else {
      return make_error(where + "[" + std::to_string(i) + "]: expected a string or a pair");
    }
  }
  return out;
}

Result<BpeModel> parse_bpe_model(const json& model, const std::string& where) {
  if (!model.is_object()) return make_error(where + ": expected an object");
  BRISK_ASSIGN(type, json_fields::optional_string(model, "type", where));
  if (type.value_or("BPE") != "BPE") {
    return make_error(where + ".type: unsupported model '" + *type + "' (brisk reads BPE)");
  }
  const json& vocab = member(model, "vocab");
  if (!vocab.is_object()) return make_error(where + ".vocab: expected an object of token: id");
  std::vector<std::pair<std::string, int32_t>> entries;
  entries.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    BRISK_ASSIGN(checked, json_fields::token_id(id, where + ".vocab: id of '" + token + "'"));
    entries.emplace_back(token, checked);
  }
  BRISK_ASSIGN(merges, parse_merges(member(model, "merges"), where + ".merges"));

  BpeOptions options;
  BRISK_ASSIGN(byte_fallback, json_fields::boolean(model, "byte_fallback", false, where));
  BRISK_ASSIGN(fuse_unk, json_fields::boolean(model, "fuse_unk", false, where));
  BRISK_ASSIGN(ignore_merges, json_fields::boolean(model, "ignore_merges", false, where));
  BRISK_ASSIGN(unk, json_fields::optional_string(model, "unk_token", where));
  BRISK_ASSIGN(prefix, json_fields::optional_string(model, "continuing_subword_prefix", where));
  BRISK_ASSIGN(suffix, json_fields::optional_string(model, "end_of_word_suffix", where));
  // "dropout" is a training-time regulariser; inference encodes deterministically.
  options.byte_fallback = byte_fallback;
  options.fuse_unk = fuse_unk;
  options.ignore_merges = ignore_merges;
  options.unk_token = unk;
  options.continuing_subword_prefix = prefix.value_or("");
  options.end_of_word_suffix = suffix.value_or("");
  return BpeModel::create(std::move(entries), merges, std::move(options), where);
}

}  // namespace

Result<TokenizerPipeline> parse_tokenizer_pipeline(const json& root, const std::string& prefix) {
  BRISK_ASSIGN(normalizer, Normalizer::from_json(member(root, "normalizer"), prefix + "normalizer"));
  BRISK_ASSIGN(pre_tokenizer, PreTokenizer::from_json(member(root, "pre_tokenizer"), prefix + "pre_tokenizer"));
  BRISK_ASSIGN(decoder, TokenDecoder::from_json(member(root, "decoder"), prefix + "decoder"));
  BRISK_ASSIGN(specials, parse_post_processor(member(root, "post_processor"), prefix + "post_processor"));
  BRISK_ASSIGN(added, AddedVocabulary::parse(member(root, "added_tokens"), prefix + "added_tokens"));
  return TokenizerPipeline{std::move(normalizer), std::move(pre_tokenizer), std::move(decoder), std::move(added),
                           std::move(specials)};
}

Result<std::unique_ptr<BpeTokenizer>> BpeTokenizer::load(const std::filesystem::path& file) {
  BRISK_ASSIGN(root, json_fields::read_file(file));
  return from_json(root, file.string() + ": ");
}

Result<std::unique_ptr<BpeTokenizer>> BpeTokenizer::from_json(const nlohmann::json& root, const std::string& prefix) {
  if (!root.is_object()) return make_error(prefix + "expected a JSON object");
  if (!root.contains("model")) return make_error(prefix + "model: missing");
  // Component parsers check the fields they read; this catch is a backstop so that no nlohmann
  // exception escapes the library whatever the file contains.
  try {
    BRISK_ASSIGN(model, parse_bpe_model(root["model"], prefix + "model"));
    BRISK_ASSIGN(parts, parse_tokenizer_pipeline(root, prefix));
    return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(model), std::move(parts)));
  } catch (const nlohmann::json::exception& e) {
    return make_error(prefix + "unexpected structure: " + e.what());
  }
}

}  // namespace brisk
