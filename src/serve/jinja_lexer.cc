#include "serve/jinja_lexer.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "serve/jinja_strings.h"
#include "serve/jinja_value.h"

namespace brisk::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

int count_newlines(std::string_view s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

std::string normalize_newlines(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's unicode-escape decoding of a string literal's body, which is what jinja2 applies.
std::string decode_string_literal(std::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out += body[i];
      continue;
    }
    const char c = body[++i];
    switch (c) {
      case '\n':
        break;  // a backslash-newline continues the line
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t k = 1; k <= digits; ++k) {
          const int h = i + k < body.size() ? hex_value(body[i + k]) : -1;
          if (h < 0) throw TemplateError("truncated \\" + std::string(1, c) + " escape in a string", line);
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        if (cp > 0x10FFFF) throw TemplateError("escape beyond U+10FFFF in a string", line);
        out += encode_utf8({cp});
        i += digits;
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          uint32_t cp = 0;
          size_t k = 0;
          for (; k < 3 && i + k < body.size() && body[i + k] >= '0' && body[i + k] <= '7'; ++k) {
            cp = cp * 8 + static_cast<uint32_t>(body[i + k] - '0');
          }
          out += encode_utf8({cp});
          i += k - 1;
        } else {  // unknown escapes stay as written
          out += '\\';
          out += c;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& source) : src_(normalize_newlines(source)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t start = find_tag_start();
      if (start == std::string::npos) {
        emit_text(src_.substr(pos_));
        break;
      }
      const char kind = src_[start + 1];
      const char control = start + 2 < src_.size() ? src_[start + 2] : '\0';
      const bool has_control = control == '-' || control == '+';
      std::string text = src_.substr(pos_, start - pos_);
      const int text_newlines = count_newlines(text);
      if (control == '-') {
        text.erase(text.find_last_not_of(" \t\n\r\f\v") + 1);
      } else if (control != '+' && kind != '{') {
        lstrip_block_indent(text);
      }
      emit_text(text);
      line_ += text_newlines;
      pos_ = start + 2 + (has_control ? 1 : 0);
      if (kind == '#') {
        skip_comment();
      } else {
        lex_tag(kind == '{' ? TokenType::kVariableBegin : TokenType::kBlockBegin);
      }
    }
    tokens_.push_back({TokenType::kEnd, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t find_tag_start() const {
    for (size_t i = src_.find('{', pos_); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // lstrip_blocks: indentation between a line start and a block tag is not output.
  void lstrip_block_indent(std::string& text) const {
    const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (line_start == 0 && !line_starting_) return;
    if (line_start == text.size()) return;
    for (size_t i = line_start; i < text.size(); ++i) {
      if (!is_space(text[i])) return;
    }
    text.erase(line_start);
  }

  void emit_text(const std::string& text) {
    if (!text.empty()) tokens_.push_back({TokenType::kText, text, line_});
  }

  // After a tag: `-` strips all whitespace, `+` nothing, else trim_blocks drops one newline.
  void finish_tag(size_t tag_start, char control, bool trim_newline) {
    if (control == '-') {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    } else if (control != '+' && trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    line_starting_ = pos_ > tag_start && src_[pos_ - 1] == '\n';
    line_ += count_newlines(std::string_view(src_).substr(tag_start, pos_ - tag_start));
  }

  void skip_comment() {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) throw TemplateError("unterminated comment: missing '#}'", line_);
    const char control = end > pos_ && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
    const size_t body_start = pos_;
    pos_ = end + 2;
    line_ += count_newlines(std::string_view(src_).substr(body_start, end - body_start));
    finish_tag(end, control, true);
  }

  void lex_tag(TokenType begin) {
    const bool is_block = begin == TokenType::kBlockBegin;
    const int tag_line = line_;
    const char* close = is_block ? "%}" : "}}";
    tokens_.push_back({begin, "", line_});
    int depth = 0;  // open brackets: "}}" inside a dict literal does not end the tag
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size()) {
        throw TemplateError(
            std::string("unterminated '") + (is_block ? "{%" : "{{") + "' tag: missing '" + close + "'",
            tag_line);
      }
      if (depth == 0) {
        const std::string_view rest = std::string_view(src_).substr(pos_);
        char control = '\0';
        if ((rest.size() >= 3 && (rest[0] == '-' || (is_block && rest[0] == '+'))) &&
            rest.substr(1, 2) == close) {
          control = rest[0];
        }
        if (control || rest.substr(0, 2) == close) {
          const size_t end_start = pos_;
          pos_ += control ? 3 : 2;
          tokens_.push_back({is_block ? TokenType::kBlockEnd : TokenType::kVariableEnd, "", line_});
          finish_tag(end_start, control, is_block);
          return;
        }
      }
      lex_expression_token(depth);
    }
  }

  void lex_expression_token(int& depth) {
    const char c = src_[pos_];
    if (is_digit(c)) return lex_number();
    if (is_name_start(c)) {
      const size_t start = pos_;
      while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
      tokens_.push_back({TokenType::kName, src_.substr(start, pos_ - start), line_});
      return;
    }
    if (c == '\'' || c == '"') return lex_string(c);
    static const char* const kTwoCharOperators[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwoCharOperators) {
      if (src_.compare(pos_, 2, op) == 0) {
        tokens_.push_back({TokenType::kOperator, op, line_});
        pos_ += 2;
        return;
      }
    }
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      throw TemplateError(std::string("unexpected character '") + c + "' in a tag", line_);
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    tokens_.push_back({TokenType::kOperator, std::string(1, c), line_});
    ++pos_;
  }

  void lex_number() {
    const size_t start = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || (src_[pos_] == '_' && pos_ + 1 < src_.size() &&
                                                             is_digit(src_[pos_ + 1]))))
        ++pos_;
    };
    digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && is_digit(src_[p])) {
        is_float = true;
        pos_ = p;
        digits();
      }
    }
    std::string text = src_.substr(start, pos_ - start);
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    if (!is_float && (text.size() > 18)) throw TemplateError("integer literal too large: " + text, line_);
    tokens_.push_back({is_float ? TokenType::kFloat : TokenType::kInteger, text, line_});
  }

  void lex_string(char quote) {
    const int start_line = line_;
    size_t i = pos_ + 1;
    while (i < src_.size() && src_[i] != quote) {
      if (src_[i] == '\\') ++i;
      ++i;
    }
    if (i >= src_.size()) throw TemplateError("unterminated string literal", start_line);
    const std::string_view body = std::string_view(src_).substr(pos_ + 1, i - pos_ - 1);
    tokens_.push_back({TokenType::kString, decode_string_literal(body, start_line), start_line});
    line_ += count_newlines(body);
    pos_ = i + 1;
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;  // the previous token ended a line (jinja2's lstrip rule uses it)
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(source).run(); }

}  // namespace brisk::jinja
