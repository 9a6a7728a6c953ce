// Splits a Jinja template into text and tag tokens, applying whitespace control the way
// jinja2's lexer does with transformers' settings: trim_blocks (the newline after a block or
// comment tag is dropped), lstrip_blocks (spaces before a block or comment tag on its own line
// are dropped), `-` on either side of a tag strips all adjacent whitespace, `+` turns the
// trimming off for that side. Also as in jinja2: line endings become "\n" and one trailing
// newline of the source is dropped (keep_trailing_newline=False).
#pragma once

#include <string>
#include <vector>

namespace brisk::jinja {

enum class TokenType {
  kText,           // literal template text (after whitespace control)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,  // text holds the decoded value
  kInteger,
  kFloat,
  kOperator,  // text holds the operator: "+", "//", "==", "(", ...
  kEnd,
};

struct Token {
  TokenType type;
  std::string text;
  int line;
};

// Throws TemplateError (with the line) on an unterminated tag, comment or string, or a
// character that starts no token.
std::vector<Token> tokenize(const std::string& source);

}  // namespace brisk::jinja
