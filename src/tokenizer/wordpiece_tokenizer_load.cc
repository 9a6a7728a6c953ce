// Reading tokenizer.json into a WordPieceTokenizer. The normalizer, pre-tokenizer, decoder,
// post-processor and added tokens are parsed by the same components as for BPE; this file reads
// the WordPiece model section and checks the pieces fit together.
#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"
#include "tokenizer/wordpiece_tokenizer.h"

namespace brisk {
namespace {

using json_fields::member;
using nlohmann::json;

Result<WordPieceModel> parse_wordpiece_model(const json& model, const std::string& where) {
  if (!model.is_object()) return make_error(where + ": expected an object");
  const json& vocab = member(model, "vocab");
  if (!vocab.is_object()) return make_error(where + ".vocab: expected an object of token: id");
  std::vector<std::pair<std::string, int32_t>> entries;
  entries.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    BRISK_ASSIGN(checked, json_fields::token_id(id, where + ".vocab: id of '" + token + "'"));
    entries.emplace_back(token, checked);
  }
  // Defaults are those of tokenizers' WordPieceBuilder.
  WordPieceOptions options;
  BRISK_ASSIGN(unk, json_fields::optional_string(model, "unk_token", where));
  BRISK_ASSIGN(prefix, json_fields::optional_string(model, "continuing_subword_prefix", where));
  BRISK_ASSIGN(max_chars, json_fields::count(model, "max_input_chars_per_word", 100, where));
  if (unk) options.unk_token = *unk;
  if (prefix) options.continuing_subword_prefix = *prefix;
  options.max_input_chars_per_word = static_cast<size_t>(max_chars);
  return WordPieceModel::create(std::move(entries), std::move(options), where);
}

}  // namespace

bool is_wordpiece_json(const nlohmann::json& root) {
  const json& model = member(root, "model");
  const json& type = member(model, "type");
  if (type.is_string()) return type.get_ref<const std::string&>() == "WordPiece";
  // Files from before models were tagged: tokenizers tries BPE first, which needs merges.
  return type.is_null() && !model.contains("merges") && member(model, "vocab").is_object();
}

Result<std::unique_ptr<WordPieceTokenizer>> WordPieceTokenizer::from_json(const nlohmann::json& root,
                                                                          const std::string& prefix) {
  if (!root.is_object()) return make_error(prefix + "expected a JSON object");
  if (!root.contains("model")) return make_error(prefix + "model: missing");
  // Component parsers check the fields they read; the catch is a backstop so that no nlohmann
  // exception escapes the library whatever the file contains.
  try {
    BRISK_ASSIGN(model, parse_wordpiece_model(root["model"], prefix + "model"));
    BRISK_ASSIGN(parts, parse_tokenizer_pipeline(root, prefix));
    if (parts.pre_tokenizer.byte_level())
      return make_error(prefix + "pre_tokenizer: ByteLevel with a WordPiece model is not supported");
    return std::unique_ptr<WordPieceTokenizer>(new WordPieceTokenizer(std::move(model), std::move(parts)));
  } catch (const nlohmann::json::exception& e) {
    return make_error(prefix + "unexpected structure: " + e.what());
  }
}

}  // namespace brisk
