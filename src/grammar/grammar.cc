// GBNF text -> Grammar (grammar.h): a recursive-descent parser that emits byte-level rules.
#include "grammar/grammar.h"

#include "tokenizer/utf8.h"

#include <algorithm>
#include <map>

namespace brisk::grammar {

namespace {

// Repetition counts above this are refused: {m,n} unrolls into m + (n - m) elements.
constexpr uint32_t kMaxRepeat = 4096;
// Elements a whole grammar may unroll into (a request's grammar must not take the server's memory:
// each element is ~40 bytes, so this is ~40 MB at most).
constexpr int64_t kMaxElements = int64_t(1) << 20;
// Rules entered before a byte is matched (the matcher expands them recursively), and groups
// nested inside groups (the parser recurses into each).
constexpr int32_t kMaxLeftDepth = 1000;
constexpr int kMaxGroupDepth = 256;
constexpr uint32_t kMaxCodePoint = 0x10FFFF;

int utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// Splits [lo, hi] (one encoded length, no surrogates) until each piece is a product of byte ranges.
void split_same_length(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>& out) {
  const int n = utf8_length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t low_bits = (uint32_t(1) << (6 * i)) - 1;  // the last i continuation bytes
    if ((lo & ~low_bits) == (hi & ~low_bits)) continue;
    if ((lo & low_bits) != 0) {
      split_same_length(lo, lo | low_bits, out);
      split_same_length((lo | low_bits) + 1, hi, out);
      return;
    }
    if ((hi & low_bits) != low_bits) {
      split_same_length(lo, (hi & ~low_bits) - 1, out);
      split_same_length(hi & ~low_bits, hi, out);
      return;
    }
  }
  std::string a, b;
  utf8::append_char(a, lo);
  utf8::append_char(b, hi);
  std::vector<std::pair<uint8_t, uint8_t>> run;
  for (int i = 0; i < n; ++i) run.emplace_back(uint8_t(a[size_t(i)]), uint8_t(b[size_t(i)]));
  out.push_back(std::move(run));
}

}  // namespace

std::vector<std::vector<std::pair<uint8_t, uint8_t>>> utf8_byte_ranges(uint32_t lo, uint32_t hi) {
  std::vector<std::vector<std::pair<uint8_t, uint8_t>>> out;
  hi = std::min(hi, kMaxCodePoint);
  const uint32_t bounds[] = {0x7F, 0x7FF, 0xD7FF, 0xDFFF, 0xFFFF, kMaxCodePoint};
  uint32_t start = lo;
  for (uint32_t bound : bounds) {
    if (start > hi) break;
    if (start > bound) continue;
    const uint32_t end = std::min(hi, bound);
    if (bound != 0xDFFF) split_same_length(start, end, out);  // the surrogate block has no UTF-8
    start = end + 1;
  }
  return out;
}

// Collects rules while parsing, then flattens them into a Grammar.
class GrammarBuilder {
 public:
  using Sequence = std::vector<Element>;

  int32_t rule_id(const std::string& name) {
    auto [it, added] = ids_.try_emplace(name, int32_t(rules_.size()));
    if (added) rules_.push_back({name, {}, false, 0});
    return it->second;
  }
  // A rule of its own for a group, a repetition or a multi-byte character class.
  int32_t helper_rule(const std::string& base, std::vector<Sequence> alternatives) {
    const int32_t id = new_helper(base);
    set_helper(id, std::move(alternatives));
    return id;
  }
  // A helper that refers to itself is named first, then given its alternatives.
  // Helpers are named `parent~N`: '~' is not a name character, so no written rule collides.
  int32_t new_helper(const std::string& base) { return rule_id(base + "~" + std::to_string(rules_.size())); }
  void set_helper(int32_t id, std::vector<Sequence> alternatives) {
    rules_[size_t(id)].alternatives = std::move(alternatives);
    rules_[size_t(id)].defined = true;
  }
  Status define(int32_t id, std::vector<Sequence> alternatives, int line) {
    RuleDraft& rule = rules_[size_t(id)];
    if (rule.defined) return make_error("grammar line " + std::to_string(line) + ": rule '" + rule.name + "' is defined twice");
    rule.alternatives = std::move(alternatives);
    rule.defined = true;
    rule.line = line;
    return ok_status();
  }
  void note_use(int32_t id, int line) {
    if (rules_[size_t(id)].line == 0) rules_[size_t(id)].line = -line;  // first used here
  }

  Result<Grammar> finish() {
    auto root = ids_.find("root");
    if (root == ids_.end() || !rules_[size_t(root->second)].defined)
      return make_error("grammar: there is no 'root' rule (the rule generation starts from)");
    for (const RuleDraft& rule : rules_)
      if (!rule.defined)
        return make_error("grammar line " + std::to_string(-rule.line) + ": rule '" + rule.name + "' is used but never defined");
    BRISK_TRY(refuse_left_recursion());
    Grammar g;
    g.root_ = root->second;
    for (const RuleDraft& rule : rules_) {
      std::vector<int32_t>& starts = g.starts_.emplace_back();
      for (const Sequence& alt : rule.alternatives) {
        starts.push_back(int32_t(g.elements_.size()));
        g.elements_.insert(g.elements_.end(), alt.begin(), alt.end());
        g.elements_.push_back(Element{});
      }
    }
    return g;
  }

 private:
  struct RuleDraft {
    std::string name;
    std::vector<Sequence> alternatives;
    bool defined;
    int line;  // > 0: defined on it; < 0: first used on -line
  };

  // A rule that can reach itself without consuming a byte would expand forever; one that reaches
  // rules kMaxLeftDepth deep before its first byte would expand on a deep native stack. Both are
  // found without recursion (a request's grammar may have a million rules) in linear time.
  Status refuse_left_recursion() {
    const size_t n = rules_.size();
    // Nullable rules, by a worklist: an alternative of rules only is nullable once all of them are.
    std::vector<char> nullable(n, 0);
    std::vector<std::pair<int32_t, int32_t>> alternatives;  // (owner rule, rule elements not yet nullable)
    std::vector<std::vector<int32_t>> used_by(n);           // rule -> alternatives naming it (with repeats)
    std::vector<int32_t> ready;
    for (size_t r = 0; r < n; ++r)
      for (const Sequence& alt : rules_[r].alternatives) {
        bool bytes = false;
        for (const Element& e : alt) bytes = bytes || e.kind == Element::Kind::Bytes;
        if (bytes) continue;
        const int32_t id = int32_t(alternatives.size());
        alternatives.emplace_back(int32_t(r), int32_t(alt.size()));
        for (const Element& e : alt) used_by[size_t(e.rule)].push_back(id);
        if (alt.empty()) ready.push_back(int32_t(r));
      }
    while (!ready.empty()) {
      const int32_t r = ready.back();
      ready.pop_back();
      if (nullable[size_t(r)]) continue;
      nullable[size_t(r)] = 1;
      for (int32_t id : used_by[size_t(r)])
        if (--alternatives[size_t(id)].second == 0) ready.push_back(alternatives[size_t(id)].first);
    }
    std::vector<std::vector<int32_t>> leftmost(n);  // rules reachable before any byte
    for (size_t r = 0; r < n; ++r)
      for (const Sequence& alt : rules_[r].alternatives)
        for (const Element& e : alt) {
          if (e.kind != Element::Kind::Rule) break;
          leftmost[r].push_back(e.rule);
          if (!nullable[size_t(e.rule)]) break;
        }
    // Depth-first with an explicit stack: a rule met again on the current path is a cycle; depth
    // is the longest chain of rules entered before a byte.
    std::vector<int> mark(n, 0);  // 0 unvisited, 1 on the path, 2 done
    std::vector<int32_t> depth(n, 1);
    std::vector<std::pair<int32_t, size_t>> path;  // (rule, next leftmost child to look at)
    for (size_t start = 0; start < n; ++start) {
      if (mark[start] != 0) continue;
      path.emplace_back(int32_t(start), 0);
      mark[start] = 1;
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next < leftmost[size_t(r)].size()) {
          const int32_t child = leftmost[size_t(r)][next++];
          if (mark[size_t(child)] == 1)
            return make_error("grammar: rule '" + display_name(child) +
                              "' is left-recursive (it can reach itself before matching any character); rewrite it "
                              "with repetition, e.g. list ::= item (\",\" item)*");
          if (mark[size_t(child)] == 0) {
            mark[size_t(child)] = 1;
            path.emplace_back(child, 0);
          }
          continue;
        }
        for (int32_t child : leftmost[size_t(r)]) depth[size_t(r)] = std::max(depth[size_t(r)], depth[size_t(child)] + 1);
        if (depth[size_t(r)] > kMaxLeftDepth)
          return make_error("grammar: rule '" + display_name(r) + "' nests more than " + std::to_string(kMaxLeftDepth) +
                            " rules deep before its first character");
        mark[size_t(r)] = 2;
        path.pop_back();
      }
    }
    return ok_status();
  }
  std::string display_name(int32_t id) const {
    const std::string& name = rules_[size_t(id)].name;
    return name.substr(0, name.find('~'));  // helper rules carry their parent's name
  }

  std::map<std::string, int32_t> ids_;
  std::vector<RuleDraft> rules_;
};

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<Grammar> parse() {
    skip_space();
    if (at_end()) return make_error("grammar: the grammar is empty");
    while (!at_end()) {
      const int line = line_;
      BRISK_ASSIGN(name, parse_name());
      skip_space();
      if (!consume("::=")) return fail("expected '::=' after the rule name '" + name + "'");
      const int32_t id = builder_.rule_id(name);
      BRISK_ASSIGN(alternatives, parse_alternatives(name, Nesting::TopLevel));
      BRISK_TRY(builder_.define(id, std::move(alternatives), line));
      skip_space();
      if (!at_end() && !is_name_char(peek())) return fail(std::string("unexpected '") + peek() + "' in rule '" + name + "'");
    }
    return builder_.finish();
  }

 private:
  enum class Nesting { TopLevel, InGroup };
  using Sequence = GrammarBuilder::Sequence;

  bool at_end() const { return pos_ >= text_.size(); }
  char peek(size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  char take() {
    const char c = text_[pos_++];
    if (c == '\n') ++line_;
    return c;
  }
  bool consume(std::string_view s) {
    if (text_.substr(pos_, s.size()) != s) return false;
    for (size_t i = 0; i < s.size(); ++i) take();
    return true;
  }
  Error fail(const std::string& what) const { return make_error("grammar line " + std::to_string(line_) + ": " + what); }

  void skip_space() {
    while (!at_end()) {
      if (peek() == '#') {
        while (!at_end() && peek() != '\n') take();
      } else if (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r') {
        take();
      } else {
        break;
      }
    }
  }
  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }
  Result<std::string> parse_name() {
    const size_t start = pos_;
    while (!at_end() && is_name_char(peek())) take();
    if (pos_ == start) return fail(std::string("expected a rule name, found '") + peek() + "'");
    return std::string(text_.substr(start, pos_ - start));
  }
  // A name followed by ::= starts the next rule (rules may span lines; this is where one ends).
  bool at_rule_start() const {
    size_t p = pos_;
    while (p < text_.size() && is_name_char(text_[p])) ++p;
    if (p == pos_) return false;
    while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t' || text_[p] == '\n' || text_[p] == '\r')) ++p;
    return text_.substr(p, 3) == "::=";
  }

  Result<std::vector<Sequence>> parse_alternatives(const std::string& rule, Nesting nesting) {
    std::vector<Sequence> alternatives;
    for (;;) {
      BRISK_ASSIGN(seq, parse_sequence(rule, nesting));
      alternatives.push_back(std::move(seq));
      skip_space();
      if (peek() != '|') break;
      take();
    }
    return alternatives;
  }

  Result<Sequence> parse_sequence(const std::string& rule, Nesting nesting) {
    Sequence seq;
    for (;;) {
      skip_space();
      if (at_end() || peek() == '|' || peek() == ')') break;
      if (nesting == Nesting::TopLevel && at_rule_start()) break;
      BRISK_ASSIGN(term, parse_term(rule));
      BRISK_ASSIGN(repeated, parse_repetition(rule, std::move(term)));
      seq.insert(seq.end(), repeated.begin(), repeated.end());
    }
    if (nesting == Nesting::InGroup && at_end()) return fail("a '(' in rule '" + rule + "' is never closed");
    return seq;
  }

  Result<Sequence> parse_term(const std::string& rule) {
    const char c = peek();
    if (c == '"') return parse_literal();
    if (c == '[') return parse_class(rule);
    if (c == '.') {
      take();
      return code_point_class(rule, {{0, kMaxCodePoint}});
    }
    if (c == '(') {
      if (++group_depth_ > kMaxGroupDepth) return fail("groups nest more than " + std::to_string(kMaxGroupDepth) + " deep");
      take();
      BRISK_ASSIGN(alternatives, parse_alternatives(rule, Nesting::InGroup));
      if (peek() != ')') return fail("expected ')' in rule '" + rule + "'");
      take();
      --group_depth_;
      return Sequence{rule_element(builder_.helper_rule(rule, std::move(alternatives)))};
    }
    if (is_name_char(c)) {
      const int line = line_;
      BRISK_ASSIGN(name, parse_name());
      const int32_t id = builder_.rule_id(name);
      builder_.note_use(id, line);
      return Sequence{rule_element(id)};
    }
    return fail(std::string("unexpected '") + c + "' in rule '" + rule + "'");
  }

  static Element rule_element(int32_t id) {
    Element e;
    e.kind = Element::Kind::Rule;
    e.rule = id;
    return e;
  }
  static Element byte_element(uint8_t lo, uint8_t hi) {
    Element e;
    e.kind = Element::Kind::Bytes;
    e.bytes.add_range(lo, hi);
    return e;
  }

  // One code point, after a backslash or as itself (UTF-8 decoded).
  Result<uint32_t> parse_char() {
    if (at_end()) return fail("unexpected end of the grammar");
    const uint8_t c = uint8_t(take());
    if (c == '\\') {
      if (at_end()) return fail("a backslash ends the grammar");
      const char e = take();
      switch (e) {
        case 'n': return uint32_t('\n');
        case 't': return uint32_t('\t');
        case 'r': return uint32_t('\r');
        case '0': return uint32_t(0);
        case 'x': return parse_hex(2);
        case 'u': return parse_hex(4);
        case 'U': return parse_hex(8);
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'': return uint32_t(e);
        default: return fail(std::string("unknown escape '\\") + e + "'");
      }
    }
    if (c < 0x80) return uint32_t(c);
    const size_t start = pos_ - 1;
    size_t length = utf8::valid_char_length(text_, start);
    if (length == 0) return fail("the grammar is not valid UTF-8");
    const uint32_t cp = utf8::decode_char(text_, start, &length);
    for (size_t i = 1; i < length; ++i) take();
    return cp;
  }
  Result<uint32_t> parse_hex(int digits) {
    uint32_t value = 0;
    for (int i = 0; i < digits; ++i) {
      const char h = at_end() ? '\0' : take();
      const int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (v < 0) return fail("expected " + std::to_string(digits) + " hex digits in an escape");
      value = value * 16 + uint32_t(v);
    }
    if (value > kMaxCodePoint || (value >= 0xD800 && value <= 0xDFFF))
      return fail("escape names no Unicode scalar value");
    return value;
  }

  Result<Sequence> parse_literal() {
    take();  // "
    Sequence seq;
    while (!at_end() && peek() != '"') {
      BRISK_ASSIGN(cp, parse_char());
      std::string bytes;
      utf8::append_char(bytes, cp);
      for (char b : bytes) seq.push_back(byte_element(uint8_t(b), uint8_t(b)));
    }
    if (at_end()) return fail("a string literal is never closed");
    take();
    return seq;
  }

  Result<Sequence> parse_class(const std::string& rule) {
    take();  // [
    const bool negated = peek() == '^';
    if (negated) take();
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    while (!at_end() && peek() != ']') {
      BRISK_ASSIGN(lo, parse_char());
      uint32_t hi = lo;
      if (peek() == '-' && peek(1) != ']' && peek(1) != '\0') {
        take();
        auto upper = parse_char();
        if (!upper.ok()) return upper.error();
        hi = *upper;
        if (hi < lo) return fail("character range is reversed in rule '" + rule + "'");
      }
      ranges.emplace_back(lo, hi);
    }
    if (at_end()) return fail("a character class '[' is never closed");
    take();
    if (negated) ranges = complement(std::move(ranges));
    return code_point_class(rule, ranges);
  }

  static std::vector<std::pair<uint32_t, uint32_t>> complement(std::vector<std::pair<uint32_t, uint32_t>> ranges) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<uint32_t, uint32_t>> out;
    uint32_t next = 0;
    for (const auto& [lo, hi] : ranges) {
      if (lo > next) out.emplace_back(next, lo - 1);
      next = std::max(next, hi + 1);
    }
    if (next <= kMaxCodePoint) out.emplace_back(next, kMaxCodePoint);
    return out;
  }

  // The class as byte runs: one Bytes element when every member is one byte, else a helper rule
  // whose alternatives are the runs (the one-byte members merged into one alternative).
  Result<Sequence> code_point_class(const std::string& rule, const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
    Element single;
    single.kind = Element::Kind::Bytes;
    bool any_single = false;
    std::vector<Sequence> longer;
    for (const auto& [lo, hi] : ranges)
      for (const auto& run : utf8_byte_ranges(lo, hi)) {
        if (run.size() == 1) {
          single.bytes.add_range(run[0].first, run[0].second);
          any_single = true;
          continue;
        }
        Sequence seq;
        for (const auto& [a, b] : run) seq.push_back(byte_element(a, b));
        longer.push_back(std::move(seq));
      }
    if (longer.empty()) {
      if (!any_single) return fail("an empty character class in rule '" + rule + "' matches nothing");
      return Sequence{single};
    }
    if (any_single) longer.insert(longer.begin(), Sequence{single});
    return Sequence{rule_element(builder_.helper_rule(rule, std::move(longer)))};
  }

  Result<uint32_t> parse_count() {
    uint32_t value = 0;
    const size_t start = pos_;
    while (peek() >= '0' && peek() <= '9') {
      value = value * 10 + uint32_t(take() - '0');
      if (value > kMaxRepeat) return fail("repetition counts above " + std::to_string(kMaxRepeat) + " are not supported");
    }
    if (pos_ == start) return fail("expected a number in a {m,n} repetition");
    return value;
  }

  Result<Sequence> parse_repetition(const std::string& rule, Sequence term) {
    const char c = peek();
    if (c != '*' && c != '+' && c != '?' && c != '{') return term;
    take();
    uint32_t min = 0, max = UINT32_MAX;  // UINT32_MAX: unbounded
    if (c == '+') min = 1;
    if (c == '?') max = 1;
    if (c == '{') {
      BRISK_ASSIGN(low, parse_count());
      min = max = low;
      if (peek() == ',') {
        take();
        max = UINT32_MAX;
        if (peek() != '}') {
          BRISK_ASSIGN(high, parse_count());
          max = high;
        }
      }
      if (peek() != '}') return fail("expected '}' closing a {m,n} repetition");
      take();
      if (max < min) return fail("repetition {m,n} has n < m");
    }
    unrolled_ += int64_t(min) + 3 * int64_t(max == UINT32_MAX ? 1 : max - min);
    if (unrolled_ > kMaxElements)
      return fail("the grammar unrolls into more than " + std::to_string(kMaxElements) + " elements; use fewer or smaller repetitions");
    // One element to repeat: a multi-element literal gets a rule of its own.
    const Element item = term.size() == 1 ? term[0] : rule_element(builder_.helper_rule(rule, {term}));
    Sequence out(min, item);
    if (max == UINT32_MAX) {  // R ::= item R | empty
      const int32_t star = builder_.new_helper(rule);
      builder_.set_helper(star, {{item, rule_element(star)}, {}});
      out.push_back(rule_element(star));
    } else if (max > min) {  // nested optionals: O_k ::= item O_(k-1) | empty, unambiguous
      int32_t tail = -1;
      for (uint32_t k = 0; k < max - min; ++k) {
        Sequence with = {item};
        if (tail >= 0) with.push_back(rule_element(tail));
        tail = builder_.helper_rule(rule, {with, {}});
      }
      out.push_back(rule_element(tail));
    }
    return out;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int64_t unrolled_ = 0;  // elements repetitions have added
  int group_depth_ = 0;
  GrammarBuilder builder_;
};

}  // namespace

Result<Grammar> Grammar::parse(std::string_view gbnf) { return Parser(gbnf).parse(); }

}  // namespace brisk::grammar
