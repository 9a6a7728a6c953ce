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
  added_.encode(text, normalizer_, ids, [&](std::string_view segment, bool at_start) {
    encode_segment(segment, at_start, ids, cache);
  });
  if (add_special == AddSpecial::Yes) ids.insert(ids.end(), specials_.suffix.begin(), specials_.suffix.end());
  return ids;
}

}  // namespace brisk
