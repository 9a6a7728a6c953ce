#include "tokenizer/wordpiece_tokenizer.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace brisk {

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, AddSpecial add_special) const {
  // tokenizers only ever sees valid UTF-8 (Rust strings); repair as Python would have had to.
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::repair(text);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 8);
  added_.encode(text, normalizer_, ids, [&](std::string_view segment, bool at_start) {
    pre_tokenizer_.split(segment, at_start, [&](std::string_view word) { model_.encode_word(word, ids); });
  });
  return add_special == AddSpecial::Yes ? add_special_tokens(ids) : ids;
}

std::vector<int32_t> WordPieceTokenizer::add_special_tokens(std::span<const int32_t> ids) const {
  std::vector<int32_t> out;
  out.reserve(ids.size() + special_token_count());
  out.insert(out.end(), specials_.prefix.begin(), specials_.prefix.end());
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), specials_.suffix.begin(), specials_.suffix.end());
  return out;
}

}  // namespace brisk
