#include "tokenizer/unicode_props.h"

#include <algorithm>
#include <span>

#include "tokenizer/unicode_tables.h"
#include "tokenizer/utf8.h"

namespace brisk::unicode {
namespace {

using unicode_tables::CodeRange;

// The table entry with the largest `first` not above cp (tables are sorted), or nullptr.
template <class Entry, class Key>
const Entry* last_at_or_before(std::span<const Entry> table, uint32_t cp, Key key) {
  const auto it = std::upper_bound(table.begin(), table.end(), cp,
                                   [&](uint32_t value, const Entry& e) { return value < key(e); });
  return it == table.begin() ? nullptr : &*(it - 1);
}

bool in_ranges(std::span<const CodeRange> ranges, uint32_t cp) {
  const CodeRange* r = last_at_or_before(ranges, cp, [](const CodeRange& e) { return e.first; });
  return r != nullptr && cp <= r->last;
}

// Hangul syllables decompose by arithmetic (Unicode 3.12) into leading consonant, vowel and
// optional trailing consonant jamo, none of them marks.
constexpr uint32_t kHangulFirst = 0xAC00, kHangulCount = 11172;
constexpr uint32_t kLeadBase = 0x1100, kVowelBase = 0x1161, kTrailBase = 0x11A7;
constexpr uint32_t kVowelCount = 21, kTrailCount = 28;

}  // namespace

bool is_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool is_other(uint32_t cp) {
  if (cp < 0x7F) return cp < 0x20;
  return in_ranges(unicode_tables::other_ranges(), cp);
}

bool is_nonspacing_mark(uint32_t cp) {
  return cp >= 0x300 && in_ranges(unicode_tables::nonspacing_mark_ranges(), cp);
}

bool is_bert_punctuation(uint32_t cp) {
  if (cp < 0x80) {
    return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
           (cp >= 123 && cp <= 126);
  }
  return in_ranges(unicode_tables::punctuation_ranges(), cp);
}

bool is_cjk_ideograph(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

void append_without_accents(uint32_t cp, std::string& out) {
  if (cp < 0xC0) {  // nothing below U+00C0 decomposes or is a mark
    utf8::append_char(out, cp);
    return;
  }
  if (cp >= kHangulFirst && cp < kHangulFirst + kHangulCount) {
    const uint32_t index = cp - kHangulFirst;
    utf8::append_char(out, kLeadBase + index / (kVowelCount * kTrailCount));
    utf8::append_char(out, kVowelBase + index % (kVowelCount * kTrailCount) / kTrailCount);
    if (index % kTrailCount != 0) utf8::append_char(out, kTrailBase + index % kTrailCount);
    return;
  }
  const auto singles = unicode_tables::stripped_singles();
  const auto* single = last_at_or_before(singles, cp, [](const auto& e) { return e.from; });
  if (single != nullptr && single->from == cp) {
    utf8::append_char(out, single->to);
    return;
  }
  const auto multiples = unicode_tables::stripped_multiples();
  const auto* multiple = last_at_or_before(multiples, cp, [](const auto& e) { return e.from; });
  if (multiple != nullptr && multiple->from == cp) {
    for (const uint32_t part : multiple->to) {
      if (part != 0) utf8::append_char(out, part);
    }
    return;
  }
  if (!is_nonspacing_mark(cp)) utf8::append_char(out, cp);
}

void append_lowercase(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    return;
  }
  if (cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE: the one two-character lowercase
    out += "i\xCC\x87";
    return;
  }
  const auto ranges = unicode_tables::lowercase_ranges();
  const auto* run = last_at_or_before(ranges, cp, [](const auto& e) { return e.first; });
  if (run != nullptr && cp <= run->last && (cp - run->first) % run->stride == 0) {
    cp = static_cast<uint32_t>(static_cast<int64_t>(cp) + run->delta);
  }
  utf8::append_char(out, cp);
}

}  // namespace brisk::unicode
