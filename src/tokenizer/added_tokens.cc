#include "tokenizer/added_tokens.h"

#include "tokenizer/utf8.h"

namespace brisk {
namespace {

// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Approximates Unicode \w (letters, digits, marks, connector punctuation): ASCII exactly, and
// outside ASCII everything but whitespace and the common punctuation blocks.
bool is_word_char(uint32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  }
  if (is_whitespace(cp)) return false;
  if (cp >= 0x80 && cp <= 0xBF) return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
  if (cp >= 0x2000 && cp <= 0x206F) return false;  // general punctuation
  if (cp >= 0x3000 && cp <= 0x303F) return false;  // CJK punctuation
  return true;
}

// Code point of the last character of text (text is valid UTF-8 and non-empty).
uint32_t last_char(std::string_view text, size_t* start) {
  size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  size_t len = 0;
  *start = pos;
  return utf8::decode_char(text, pos, &len);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, const std::vector<std::string>& patterns)
    : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& pattern = patterns[t];
    if (pattern.empty()) continue;
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
    int32_t node = 0;
    for (unsigned char byte : pattern) {
      int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(byte, next);
        nodes_.emplace_back();
      }
      node = next;
    }
    // Two tokens with the same text: the first listed keeps it.
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int32_t>(t);
  }
}

int32_t AddedTokenMatcher::child(int32_t node, unsigned char byte) const {
  for (const auto& [b, next] : nodes_[node].children) {
    if (b == byte) return next;
  }
  return -1;
}

int32_t AddedTokenMatcher::longest_match(std::string_view text, size_t pos, size_t* end) const {
  int32_t best = -1;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = child(node, static_cast<unsigned char>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) {
      best = nodes_[node].token;
      *end = i + 1;
    }
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& out) const {
  size_t emitted = 0;  // everything before this offset is already in `out`
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t stop = 0;
    const int32_t index = longest_match(text, pos, &stop);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t start = pos;
    if (token.single_word) {
      size_t unused = 0;
      const bool word_before = start > 0 && is_word_char(last_char(text.substr(0, start), &unused));
      const bool word_after = stop < text.size() && is_word_char(utf8::decode_char(text, stop, &unused));
      if (word_before || word_after) {
        pos = stop;  // the match is consumed even when rejected, as the Aho-Corasick scan does
        continue;
      }
    }
    if (token.lstrip) {
      while (start > emitted) {
        size_t char_start = 0;
        if (!is_whitespace(last_char(text.substr(0, start), &char_start))) break;
        start = char_start;
      }
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        size_t len = 0;
        if (!is_whitespace(utf8::decode_char(text, stop, &len))) break;
        stop += len;
      }
    }
    if (emitted < start) out.push_back({emitted, start, -1});
    out.push_back({start, stop, token.id});
    emitted = stop;
    pos = stop;
  }
  if (emitted < text.size()) out.push_back({emitted, text.size(), -1});
}

}  // namespace brisk
