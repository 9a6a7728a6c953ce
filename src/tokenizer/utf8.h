// Small UTF-8 helpers shared by the tokenizer: walking characters, repairing invalid input, and
// finding where a byte stream can be cut without splitting a character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace brisk::utf8 {

// Byte length of the UTF-8 sequence a lead byte announces (1 for ASCII and for stray bytes, so
// that loops over malformed text always advance).
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Length of the valid UTF-8 character starting at s[pos], or 0 when the bytes there are not one
// (bad lead byte, bad continuation, overlong form, surrogate, beyond U+10FFFF, or truncated).
size_t valid_char_length(std::string_view s, size_t pos);

// Whether s[pos..] is a truncated prefix of some valid character (it could still be completed by
// bytes that have not arrived yet).
bool is_incomplete_prefix(std::string_view s, size_t pos);

// Returns s with every maximal invalid subsequence replaced by U+FFFD, as Rust's
// String::from_utf8_lossy (and thus Hugging Face) does.
std::string repair(std::string_view s);

// True when s is entirely valid UTF-8.
bool is_valid(std::string_view s);

// An error naming `what`, the first invalid byte and its offset when s is not valid UTF-8. The
// tokenizers would replace such bytes by U+FFFD (as Hugging Face does), which silently changes
// the input, so text from users is checked first.
Status require_valid(std::string_view s, std::string_view what);

// Decodes the (valid) character at s[pos]; `length` receives its byte length.
uint32_t decode_char(std::string_view s, size_t pos, size_t* length);

// Appends the UTF-8 encoding of a code point.
void append_char(std::string& out, uint32_t code_point);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace brisk::utf8
