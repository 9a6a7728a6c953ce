// tokenizers' BertNormalizer (what BERT-family tokenizer.json files use), in the order it runs:
// clean_text drops NUL, U+FFFD and control/format/private-use characters (tab, newline and
// carriage return excepted) and turns every whitespace character into ' '; handle_chinese_chars
// puts spaces around CJK ideographs; strip_accents (null: follow lowercase) applies NFD and drops
// nonspacing marks; lowercase applies the full Unicode lowercase mapping.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace brisk {

struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  // absent: the same as lowercase
  bool lowercase = true;

  bool strips_accents() const { return strip_accents.value_or(lowercase); }
};

// Reads a {"type": "BertNormalizer", ...} object; absent options take tokenizers' defaults, and
// options brisk does not know are an error naming them.
Result<BertNormalizerOptions> parse_bert_normalizer(const nlohmann::json& config, const std::string& where);

// Rewrites text (valid UTF-8) in place.
void apply_bert_normalizer(const BertNormalizerOptions& options, std::string& text);

}  // namespace brisk
