// A context-free grammar over bytes, written in GBNF (llama.cpp's notation, which its server's
// `grammar` field takes): what constrained decoding lets the model write.
//
//   root   ::= "{" ws pair ("," ws pair)* "}"     # rule ::= alternatives; `root` is the start
//   pair   ::= [a-z]+ ":" ws [0-9]{1,3}           # "literal", [class], [^negated], . (any char)
//   ws     ::= [ \t\n]*                           # grouping ( ), repetition * + ? {m} {m,} {m,n}
//
// Terminals are compiled to bytes: a literal to its UTF-8 bytes, a character class over code points
// to the alternatives of byte ranges that spell exactly those code points in UTF-8 (so a token that
// ends inside a multi-byte character, as byte-level BPE pieces do, is judged on its own bytes, with
// no partial-character bookkeeping). Repetitions become helper rules (x* is R ::= x R | empty).
// Left recursion is refused at parse time: the matcher (grammar_stacks.h) expands rules top down.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace brisk::grammar {

// A set of byte values.
struct ByteSet {
  uint64_t bits[4] = {0, 0, 0, 0};
  bool has(uint8_t byte) const { return (bits[byte >> 6] >> (byte & 63)) & 1; }
  void add(uint8_t byte) { bits[byte >> 6] |= uint64_t(1) << (byte & 63); }
  void add_range(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) add(uint8_t(b));
  }
};

// One step of an alternative: match a byte from a set, or a whole rule; End closes the alternative.
struct Element {
  enum class Kind : uint8_t { End, Bytes, Rule };
  Kind kind = Kind::End;
  int32_t rule = -1;  // Kind::Rule
  ByteSet bytes;      // Kind::Bytes
};

class Grammar {
 public:
  // Parses GBNF text; the start rule is `root`. The error names the line and what is wrong
  // (an undefined rule, a left-recursive one, a bad escape, ...).
  static Result<Grammar> parse(std::string_view gbnf);

  // Every alternative of every rule, each a run of elements closed by an End, in one array: a
  // position in it is all a parse stack needs.
  const std::vector<Element>& elements() const { return elements_; }
  // The positions where rule `rule`'s alternatives start.
  const std::vector<int32_t>& alternatives(int32_t rule) const { return starts_[size_t(rule)]; }
  int32_t root() const { return root_; }

 private:
  friend class GrammarBuilder;
  std::vector<Element> elements_;
  std::vector<std::vector<int32_t>> starts_;  // per rule
  int32_t root_ = -1;
};

// The code points [lo, hi] as UTF-8: runs of byte ranges, each run one byte sequence shape
// (surrogates U+D800..U+DFFF, which UTF-8 cannot hold, are left out).
std::vector<std::vector<std::pair<uint8_t, uint8_t>>> utf8_byte_ranges(uint32_t lo, uint32_t hi);

}  // namespace brisk::grammar
