// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) used by the
// pre-tokenizers and Replace normalizers. Oniguruma, which Hugging Face uses, and PCRE2 agree on
// the Perl-style semantics these patterns rely on: leftmost-first alternation, \p{L}/\p{N},
// lookahead such as `\s+(?!\S)`.
#pragma once

#include <cstddef>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace brisk {

// Thrown by find_all when a pattern exhausts PCRE2's match limit even though the limit grows with
// the text: only a catastrophically backtracking pattern (a hostile tokenizer.json) does. The one
// exception that crosses layers: Tokenizer::encode has no error channel, and splitting the text
// some other way would be a silent wrong answer. `brisk`'s main and the HTTP dispatcher report it.
class RegexLimitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Span {
  size_t begin;
  size_t end;
};

class Regex {
 public:
  // `where` names the file/field the pattern came from, for the error message.
  static Result<Regex> compile(std::string_view pattern, const std::string& where);

  // Appends every successive match in text (which must be valid UTF-8), iterating as Rust's
  // onig find_iter does: an empty match right after the previous match is skipped.
  void find_all(std::string_view text, std::vector<Span>& matches) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

// A tokenizers "pattern" field: {"String": "literal"} or {"Regex": "..."}. Literals are searched
// directly (non-overlapping, left to right), which is both what Rust's match_indices does and
// faster than a regex.
class Pattern {
 public:
  static Result<Pattern> from_json(const nlohmann::json& pattern, const std::string& where);
  static Pattern from_literal(std::string literal);
  static Result<Pattern> from_regex(std::string_view regex, const std::string& where);

  void find_all(std::string_view text, std::vector<Span>& matches) const;

 private:
  std::string literal_;
  std::optional<Regex> regex_;
};

}  // namespace brisk
