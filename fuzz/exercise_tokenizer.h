// Why: a tokenizer that loads may still fail when used (a pre-tokenizer regex that backtracks
// without end, an id past the vocabulary, a merge that names no token), so the harnesses that
// load one (tokenizer.json, GGUF) also encode text with it and decode the ids back, whole and
// streamed, as the server does.
#pragma once

#include <string_view>

#include "tokenizer/regex.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace brisk::fuzz {

// Text with what pre-tokenizers split on: contractions, digits, punctuation, CR/LF runs,
// Unicode letters and an emoji, and a run of spaces (the PCRE2 match-limit bug needed ~10M).
inline constexpr std::string_view kSampleText =
    "Hello world! It's 2024: 12345 tokens,\r\n\r\n  \t caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC "
    "\xF0\x9F\x98\x80 <s></s><|endoftext|>        end";

inline void exercise_tokenizer(const Tokenizer& tokenizer, std::string_view text) {
  for (const AddSpecial special : {AddSpecial::No, AddSpecial::Yes}) {
    std::vector<int32_t> ids;
    try {
      ids = tokenizer.encode(text, special);
    } catch (const RegexLimitError&) {  // the documented error of a backtracking regex (regex.h)
      return;
    }
    (void)tokenizer.decode(ids, /*skip_special=*/true);
    StreamDecoder stream(tokenizer);
    for (const int32_t id : ids) (void)stream.push(id);
    (void)stream.flush();
  }
  // Ids from outside: the vocabulary's edges and the largest id a request may carry.
  for (const int32_t id : {0, tokenizer.vocab_size() - 1, tokenizer.vocab_size(), INT32_MAX}) {
    (void)tokenizer.token_bytes(id, -1);
    (void)tokenizer.is_special(id);
  }
}

}  // namespace brisk::fuzz
