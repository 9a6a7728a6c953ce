#include "tokenizer/utf8.h"

#include <cstdio>

namespace brisk::utf8 {
namespace {

// How many bytes from s[pos] follow the well-formed UTF-8 pattern (Unicode table 3-7), and how
// many a complete character with that lead byte needs. matched == needed means a valid char.
struct PrefixMatch {
  size_t matched = 0;
  size_t needed = 1;
};

PrefixMatch match_prefix(std::string_view s, size_t pos) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  if (lead < 0x80) return {1, 1};
  // The allowed range of the second byte depends on the lead byte; later bytes are 80..BF.
  unsigned char lo = 0x80, hi = 0xBF;
  size_t needed = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    needed = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    needed = 3;
    if (lead == 0xE0) lo = 0xA0;  // no overlong forms
    if (lead == 0xED) hi = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    needed = 4;
    if (lead == 0xF0) lo = 0x90;  // no overlong forms
    if (lead == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  } else {
    return {0, 1};  // continuation byte or a lead that never starts a valid character
  }
  PrefixMatch match{1, needed};
  for (size_t i = 1; i < needed && pos + i < s.size(); ++i) {
    const auto byte = static_cast<unsigned char>(s[pos + i]);
    if (byte < lo || byte > hi) break;
    ++match.matched;
    lo = 0x80;
    hi = 0xBF;
  }
  return match;
}

}  // namespace

size_t valid_char_length(std::string_view s, size_t pos) {
  const PrefixMatch m = match_prefix(s, pos);
  return m.matched == m.needed ? m.needed : 0;
}

bool is_incomplete_prefix(std::string_view s, size_t pos) {
  const PrefixMatch m = match_prefix(s, pos);
  return m.matched > 0 && m.matched < m.needed && pos + m.matched == s.size();
}

bool is_valid(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    if (static_cast<unsigned char>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t n = valid_char_length(s, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

std::string repair(std::string_view s) {
  if (is_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t pos = 0; pos < s.size();) {
    const PrefixMatch m = match_prefix(s, pos);
    if (m.matched == m.needed) {
      out.append(s.substr(pos, m.needed));
      pos += m.needed;
    } else {
      // One replacement character per maximal invalid subpart, as from_utf8_lossy does.
      out.append(kReplacementChar);
      pos += m.matched == 0 ? 1 : m.matched;
    }
  }
  return out;
}

uint32_t decode_char(std::string_view s, size_t pos, size_t* length) {
  const auto lead = static_cast<unsigned char>(s[pos]);
  const size_t n = sequence_length(lead);
  *length = n;
  if (n == 1) return lead;
  uint32_t cp = lead & (0x7F >> n);
  for (size_t i = 1; i < n && pos + i < s.size(); ++i) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[pos + i]) & 0x3F);
  }
  return cp;
}

void append_char(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

Status require_valid(std::string_view s, std::string_view what) {
  for (size_t pos = 0; pos < s.size();) {
    const size_t length = valid_char_length(s, pos);
    if (length > 0) {
      pos += length;
      continue;
    }
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", unsigned(static_cast<unsigned char>(s[pos])));
    return make_error(std::string(what) + " is not valid UTF-8 (byte " + byte + " at offset " + std::to_string(pos) +
                      "); brisk reads text as UTF-8: convert it first, e.g. iconv -f latin1 -t utf-8");
  }
  return ok_status();
}

}  // namespace brisk::utf8
