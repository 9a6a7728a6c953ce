// The added tokens of a tokenizer.json ([CLS], <|endoftext|>, user-added words) and the encoding
// flow around them that every model type shares, as tokenizers' AddedVocabulary runs it: tokens
// with normalized=false are cut out of the raw text, each stretch between them is normalized,
// tokens with normalized=true are cut out of that, and what remains goes to the model.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/string_map.h"

namespace brisk {

class AddedVocabulary {
 public:
  // Parses tokenizer.json's "added_tokens" array (null: none).
  static Result<std::vector<AddedToken>> parse(const nlohmann::json& added, const std::string& where);

  AddedVocabulary() = default;
  // `normalizer` is the tokenizer's: normalized tokens are looked for in its output.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer& normalizer);

  // Called with each stretch of normalized text left between added tokens, in order;
  // `at_text_start` is true for the stretch that begins the input.
  using SegmentEncoder = std::function<void(std::string_view text, bool at_text_start)>;

  // Appends the ids of `text` (valid UTF-8): added tokens' own ids, and whatever
  // `encode_segment` appends for the text between them.
  void encode(std::string_view text, const Normalizer& normalizer, std::vector<int32_t>& ids,
              const SegmentEncoder& encode_segment) const;

  const AddedToken* find(int32_t id) const;  // nullptr when id is not an added token
  std::optional<int32_t> find(std::string_view content) const;
  int32_t id_limit() const { return id_limit_; }  // one past the largest added id

 private:
  std::vector<AddedToken> tokens_;
  AddedTokenMatcher raw_matcher_;         // tokens with normalized=false
  AddedTokenMatcher normalized_matcher_;  // the others, matched after normalization
  StringMap<int32_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;  // index into tokens_
  int32_t id_limit_ = 0;
};

}  // namespace brisk
