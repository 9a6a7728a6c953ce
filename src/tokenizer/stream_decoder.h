// Incremental detokenization for streaming output: bytes of a multi-byte UTF-8 character that
// arrive split across tokens are held back until the character is complete.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace brisk {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // Returns the text that became complete with this token (possibly empty).
  std::string push(int32_t id);
  // Returns whatever is still held back (invalid trailing bytes become U+FFFD).
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  int32_t previous_ = -1;
  std::string pending_;
};

// Length of the longest prefix of s that ends on a UTF-8 character boundary.
size_t complete_utf8_prefix(const std::string& s);

}  // namespace brisk
