#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace brisk {
namespace {

// Words longer than this are not cached: they are rare, and a SentencePiece-style tokenizer
// without a pre-tokenizer hands over whole texts as one word.
constexpr size_t kMaxCachedWordBytes = 256;

}  // namespace

BpeTokenizer::BpeTokenizer(BpeModel model, Normalizer normalizer, PreTokenizer pre_tokenizer,
                           TokenDecoder decoder, std::vector<AddedToken> added, SpecialTokenTemplate specials)
    : model_(std::move(model)),
      normalizer_(std::move(normalizer)),
      pre_tokenizer_(std::move(pre_tokenizer)),
      decoder_(std::move(decoder)),
      added_(std::move(added)),
      specials_(std::move(specials)) {
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  vocab_size_ = model_.size();
  for (size_t i = 0; i < added_.size(); ++i) {
    const AddedToken& token = added_[i];
    added_by_content_.emplace(token.content, token.id);
    added_by_id_.emplace(token.id, i);
    vocab_size_ = std::max(vocab_size_, token.id + 1);
    if (token.normalized) {
      // Normalized tokens are searched for in normalized text, so their pattern is normalized.
      std::string pattern = token.content;
      normalizer_.apply(pattern);
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

Status BpeTokenizer::apply_config(const TokenizerConfig& config, const std::string& where) {
  if (config.bos_token) {
    bos_id_ = token_to_id(*config.bos_token);
    if (!bos_id_) return make_error(where + "bos_token: '" + *config.bos_token + "' is not a token");
  } else if (!specials_.prefix.empty()) {
    bos_id_ = specials_.prefix.front();
  }
  if (config.eos_token) {
    eos_id_ = token_to_id(*config.eos_token);
    if (!eos_id_) return make_error(where + "eos_token: '" + *config.eos_token + "' is not a token");
  }
  auto set_presence = [](std::vector<int32_t>& ids, std::optional<int32_t> id, bool wanted, bool at_front) {
    if (!id) return;
    const auto it = std::find(ids.begin(), ids.end(), *id);
    if (!wanted && it != ids.end()) ids.erase(it);
    if (wanted && it == ids.end()) ids.insert(at_front ? ids.begin() : ids.end(), *id);
  };
  if (config.add_bos_token) set_presence(specials_.prefix, bos_id_, *config.add_bos_token, true);
  if (config.add_eos_token) set_presence(specials_.suffix, eos_id_, *config.add_eos_token, false);
  return ok_status();
}

void BpeTokenizer::encode_segment(std::string_view text, bool at_text_start, std::vector<int32_t>& ids,
                                  WordCache& cache) const {
  std::string mapped;
  pre_tokenizer_.split(text, at_text_start, [&](std::string_view word) {
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
      if (const auto it = cache.find(word); it != cache.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t first = ids.size();
    if (pre_tokenizer_.byte_level()) {
      mapped.clear();
      byte_level::encode(word, mapped);
      model_.encode_word(mapped, ids);
    } else {
      model_.encode_word(word, ids);
    }
    if (cacheable) cache.emplace(word, std::vector<int32_t>(ids.begin() + first, ids.end()));
  });
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, AddSpecial add_special) const {
  // HF receives Rust strings, which are valid UTF-8 by construction; invalid input is repaired
  // the way Python would have had to before handing it over.
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::repair(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special == AddSpecial::Yes) ids.insert(ids.end(), specials_.prefix.begin(), specials_.prefix.end());
  WordCache cache;
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
    if (normalizer_.empty() && normalized_matcher_.empty()) {
      encode_segment(piece, at_start, ids, cache);
      continue;
    }
    // The normalizer runs on each stretch between added tokens separately, as in HF.
    normalized.assign(piece);
    normalizer_.apply(normalized);
    inner.clear();
    normalized_matcher_.split(normalized, inner);
    for (const TextSegment& part : inner) {
      if (part.id >= 0) {
        ids.push_back(part.id);
      } else {
        encode_segment(std::string_view(normalized).substr(part.begin, part.end - part.begin),
                       at_start && part.begin == 0, ids, cache);
      }
    }
  }
  if (add_special == AddSpecial::Yes) ids.insert(ids.end(), specials_.suffix.begin(), specials_.suffix.end());
  return ids;
}

const AddedToken* BpeTokenizer::added_token(int32_t id) const {
  const auto it = added_by_id_.find(id);
  return it == added_by_id_.end() ? nullptr : &added_[it->second];
}

std::string BpeTokenizer::token_bytes(int32_t id, int32_t previous) const {
  const std::string* spelling = nullptr;
  if (const AddedToken* added = added_token(id)) {
    spelling = &added->content;
  } else {
    spelling = model_.id_to_token(id);
  }
  // Ids past the vocabulary (models pad their embedding tables) decode to nothing.
  if (spelling == nullptr) return {};
  return decoder_.decode(*spelling, previous < 0);
}

bool BpeTokenizer::is_special(int32_t id) const {
  const AddedToken* added = added_token(id);
  return added != nullptr && added->special;
}

std::optional<int32_t> BpeTokenizer::token_to_id(std::string_view token) const {
  if (const auto it = added_by_content_.find(token); it != added_by_content_.end()) {
    return it->second;
  }
  return model_.token_to_id(token);
}

}  // namespace brisk
