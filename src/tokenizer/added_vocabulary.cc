#include "tokenizer/added_vocabulary.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "tokenizer/json_fields.h"

namespace brisk {

Result<std::vector<AddedToken>> AddedVocabulary::parse(const nlohmann::json& added,
                                                       const std::string& where) {
  std::vector<AddedToken> tokens;
  if (added.is_null()) return tokens;
  if (!added.is_array()) return make_error(where + ": expected an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const nlohmann::json& entry = added[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!entry.is_object() || !entry.contains("id")) return make_error(at + ".id: expected an integer");
    AddedToken token;
    BRISK_ASSIGN(id, json_fields::token_id(entry["id"], at + ".id"));
    token.id = id;
    BRISK_ASSIGN(content, json_fields::string(entry, "content", at));
    BRISK_ASSIGN(special, json_fields::boolean(entry, "special", false, at));
    BRISK_ASSIGN(lstrip, json_fields::boolean(entry, "lstrip", false, at));
    BRISK_ASSIGN(rstrip, json_fields::boolean(entry, "rstrip", false, at));
    BRISK_ASSIGN(single_word, json_fields::boolean(entry, "single_word", false, at));
    // tokenizers defaults "normalized" to the opposite of "special".
    BRISK_ASSIGN(normalized, json_fields::boolean(entry, "normalized", !special, at));
    token.content = content;
    token.special = special;
    token.lstrip = lstrip;
    token.rstrip = rstrip;
    token.single_word = single_word;
    token.normalized = normalized;
    tokens.push_back(std::move(token));
  }
  return tokens;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer& normalizer)
    : tokens_(std::move(tokens)) {
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& token = tokens_[i];
    by_content_.emplace(token.content, token.id);
    by_id_.emplace(token.id, i);
    id_limit_ = std::max(id_limit_, token.id + 1);
    if (token.normalized) {
      // Normalized tokens are searched for in normalized text, so their pattern is normalized.
      std::string pattern = token.content;
      normalizer.apply(pattern);
      normalized.push_back(token);
      normalized_patterns.push_back(std::move(pattern));
    } else {
      raw.push_back(token);
      raw_patterns.push_back(token.content);
    }
  }
  raw_matcher_ = AddedTokenMatcher(std::move(raw), raw_patterns);
  normalized_matcher_ = AddedTokenMatcher(std::move(normalized), normalized_patterns);
}

void AddedVocabulary::encode(std::string_view text, const Normalizer& normalizer, std::vector<int32_t>& ids,
                             const SegmentEncoder& encode_segment) const {
  std::vector<TextSegment> segments;
  raw_matcher_.split(text, segments);
  std::vector<TextSegment> inner;
  std::string normalized;
  for (const TextSegment& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    const std::string_view piece = text.substr(segment.begin, segment.end - segment.begin);
    const bool at_start = segment.begin == 0;
    if (normalizer.empty() && normalized_matcher_.empty()) {
      encode_segment(piece, at_start);
      continue;
    }
    // The normalizer runs on each stretch between added tokens separately, as in tokenizers.
    normalized.assign(piece);
    normalizer.apply(normalized);
    inner.clear();
    normalized_matcher_.split(normalized, inner);
    for (const TextSegment& part : inner) {
      if (part.id >= 0) {
        ids.push_back(part.id);
      } else {
        encode_segment(std::string_view(normalized).substr(part.begin, part.end - part.begin),
                       at_start && part.begin == 0);
      }
    }
  }
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::find(std::string_view content) const {
  const auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace brisk
