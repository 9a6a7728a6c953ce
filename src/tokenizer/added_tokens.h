// Added tokens (special tokens such as <|endoftext|>, and user-added words) are cut out of the
// text before the normalizer and pre-tokenizer see it, as Hugging Face's AddedVocabulary does:
// leftmost match first, the longest token at that position, honouring lstrip/rstrip (absorb
// neighbouring whitespace) and single_word (only match between non-word characters).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace brisk {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;  // matched against normalized text instead of the raw input
};

// A stretch of the input: an added token (id >= 0) or plain text still to be tokenized (id -1).
struct TextSegment {
  size_t begin;
  size_t end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the text to find for `tokens[i]` (its content, normalized when the token is).
  AddedTokenMatcher(std::vector<AddedToken> tokens, const std::vector<std::string>& patterns);

  bool empty() const { return tokens_.empty(); }

  // Appends segments covering text in order (whitespace absorbed by lstrip/rstrip belongs to
  // the token's segment). Empty text segments are not emitted.
  void split(std::string_view text, std::vector<TextSegment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into tokens_ when a pattern ends here
  };
  int32_t child(int32_t node, unsigned char byte) const;
  // Longest pattern starting at text[pos]: token index and end offset, or -1.
  int32_t longest_match(std::string_view text, size_t pos, size_t* end) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};  // quick rejection of positions no pattern can start at
};

}  // namespace brisk
