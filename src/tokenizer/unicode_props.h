// Character classes and mappings of the BERT normalizer and pre-tokenizer, each defined exactly as
// Hugging Face tokenizers computes it (Rust's char methods, the unicode_categories crate, NFD),
// on the Unicode versions those use (see unicode_tables.h). Code points, not bytes.
#pragma once

#include <cstdint>
#include <string>

namespace brisk::unicode {

// Rust's char::is_whitespace: the White_Space property.
bool is_whitespace(uint32_t cp);

// Categories Cc, Cf or Co: what BertNormalizer's clean_text removes (tab, newline and carriage
// return excepted by the caller). Unassigned code points are not "other" here, as in tokenizers.
bool is_other(uint32_t cp);

// Category Mn: the marks strip_accents drops after NFD.
bool is_nonspacing_mark(uint32_t cp);

// BertPreTokenizer's punctuation: ASCII punctuation (33-47, 58-64, 91-96, 123-126, which takes
// in symbols such as $ + < = > ^ ` | ~) or Unicode category P*.
bool is_bert_punctuation(uint32_t cp);

// BertNormalizer's "Chinese character": the CJK Unified Ideograph blocks it lists. As in
// tokenizers (and unlike Google's BERT, whose range starts at 0x2B820), Extension E is taken
// from 0x2B920.
bool is_cjk_ideograph(uint32_t cp);

// Appends cp's canonical decomposition (NFD) without its nonspacing marks: BertNormalizer's
// strip_accents for one character. Canonical reordering is not applied: it only permutes
// combining marks, which are dropped, except for the rare non-Mn combining characters.
void append_without_accents(uint32_t cp, std::string& out);

// Appends cp's full lowercase mapping (Rust's char::to_lowercase: U+0130 becomes "i\u0307").
void append_lowercase(uint32_t cp, std::string& out);

}  // namespace brisk::unicode
