// Recursive-descent parser over jinja_lexer's tokens, following jinja2's grammar and operator
// precedence (lowest first): `x if c else y`, or, and, not, comparisons (== != < <= > >= in,
// not in), + -, ~, * / // %, **, unary - +, then primaries with .attr, [index], [a:b:c],
// calls, `| filter` and `is test`. A filter binds tighter than unary minus and than any binary
// operator: `'a' + x | trim` trims x only.
#include <algorithm>
#include <string>
#include <string_view>

#include "serve/jinja_ast.h"
#include "serve/jinja_lexer.h"

namespace brisk::jinja {
namespace {

// Deeper templates are rejected, so neither parsing nor rendering (both recursive) can overflow
// the stack. It bounds the parser's recursion and the height of every expression tree: a
// left-associative chain (`a + b + c ...`, `x.a.b`, `x | f | g`) is built in a loop, not by
// recursion, yet renders (and is destroyed) recursively.
constexpr int kMaxNesting = 128;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  NodeList parse_all() {
    std::string ended_by;
    return parse_body({}, "", 0, &ended_by);
  }

 private:
  // ---- token helpers ----
  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(index_ + ahead, tokens_.size() - 1)]; }
  Token next() {
    Token t = peek();
    if (index_ < tokens_.size() - 1) ++index_;
    return t;
  }
  bool at_op(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::kOperator && peek(ahead).text == op;
  }
  bool at_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::kName && peek(ahead).text == name;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kText:
        return "template text";
      case TokenType::kVariableBegin:
        return "'{{'";
      case TokenType::kVariableEnd:
        return "'}}'";
      case TokenType::kBlockBegin:
        return "'{%'";
      case TokenType::kBlockEnd:
        return "'%}'";
      case TokenType::kString:
        return "a string";
      case TokenType::kEnd:
        return "the end of the template";
      default:
        return "'" + t.text + "'";
    }
  }
  [[noreturn]] void fail(const std::string& message) const { throw TemplateError(message, peek().line); }
  [[noreturn]] void fail_unexpected(const std::string& expected) const {
    fail("unexpected " + describe(peek()) + ", expected " + expected);
  }
  void expect_op(std::string_view op) {
    if (!at_op(op)) fail_unexpected("'" + std::string(op) + "'");
    next();
  }
  std::string expect_name(const char* what) {
    if (peek().type != TokenType::kName) fail_unexpected(what);
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != TokenType::kBlockEnd) fail_unexpected("'%}'");
    next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : parser(p) {
      if (++parser.depth_ > kMaxNesting)
        parser.fail("template nested too deeply (the limit is " + std::to_string(kMaxNesting) + " levels)");
    }
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  // ---- statements ----
  // Parses nodes until one of end_tags opens a tag; consumes `{% tag` and reports which.
  NodeList parse_body(const std::vector<std::string>& end_tags, const std::string& opener, int opener_line,
                      std::string* ended_by) {
    DepthGuard guard(*this);
    NodeList nodes;
    while (true) {
      const Token& t = peek();
      if (t.type == TokenType::kEnd) {
        if (end_tags.empty()) return nodes;
        throw TemplateError(
            "'{% " + opener + " %}' is never closed: expected '{% " + end_tags.back() + " %}'", opener_line);
      }
      if (t.type == TokenType::kText) {
        auto node = make_node(Node::Kind::kText);
        node->text = next().text;
        nodes.push_back(std::move(node));
      } else if (t.type == TokenType::kVariableBegin) {
        next();
        auto node = make_node(Node::Kind::kOutput);
        node->expr = parse_expression();
        if (peek().type != TokenType::kVariableEnd) fail_unexpected("'}}'");
        next();
        nodes.push_back(std::move(node));
      } else if (t.type == TokenType::kBlockBegin) {
        const Token& tag = peek(1);
        for (const std::string& end : end_tags) {
          if (tag.type == TokenType::kName && tag.text == end) {
            next();
            *ended_by = next().text;
            return nodes;
          }
        }
        nodes.push_back(parse_statement());
      } else {
        fail_unexpected("template text or a tag");
      }
    }
  }

  std::unique_ptr<Node> make_node(Node::Kind kind) const {
    auto node = std::make_unique<Node>();
    node->kind = kind;
    node->line = peek().line;
    return node;
  }

  std::unique_ptr<Node> parse_statement() {
    next();  // {%
    const int line = peek().line;
    const std::string tag = expect_name("a tag name");
    std::unique_ptr<Node> node;
    if (tag == "if")
      node = parse_if();
    else if (tag == "for")
      node = parse_for();
    else if (tag == "set")
      node = parse_set();
    else if (tag == "macro")
      node = parse_macro();
    else if (tag == "break" || tag == "continue")
      node = parse_loop_control(tag);
    else if (tag == "generation")
      node = parse_scope(tag);
    else if (tag == "filter")
      node = parse_filter_block();
    else if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") {
      throw TemplateError("unexpected '{% " + tag + " %}' with no open block it could close", line);
    } else {
      throw TemplateError("unknown tag '" + tag + "'", line);
    }
    node->line = line;
    return node;
  }

  std::unique_ptr<Node> parse_if() {
    auto node = make_node(Node::Kind::kIf);
    const int line = peek().line;
    std::string ended_by = "elif";
    while (ended_by == "elif") {
      ExprPtr condition = parse_expression();
      expect_block_end();
      NodeList body = parse_body({"elif", "else", "endif"}, "if", line, &ended_by);
      node->branches.emplace_back(std::move(condition), std::move(body));
    }
    if (ended_by == "else") {
      expect_block_end();
      node->else_body = parse_body({"endif"}, "if", line, &ended_by);
    }
    expect_block_end();
    return node;
  }

  std::unique_ptr<Node> parse_for() {
    auto node = make_node(Node::Kind::kFor);
    const int line = peek().line;
    const bool parenthesized = at_op("(");
    if (parenthesized) next();
    node->targets.push_back(expect_name("a loop variable"));
    while (at_op(",")) {
      next();
      node->targets.push_back(expect_name("a loop variable"));
    }
    if (parenthesized) expect_op(")");
    if (!at_name("in")) fail_unexpected("'in'");
    next();
    node->expr = parse_expression(/*allow_conditional=*/false);
    if (at_name("if")) {
      next();
      node->filter = parse_expression(false);
    }
    if (at_name("recursive")) fail("recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    std::string ended_by;
    node->body = parse_body({"else", "endfor"}, "for", line, &ended_by);
    --loop_depth_;
    if (ended_by == "else") {
      expect_block_end();
      node->else_body = parse_body({"endfor"}, "for", line, &ended_by);
    }
    expect_block_end();
    return node;
  }

  std::unique_ptr<Node> parse_filter_block() {
    auto node = make_node(Node::Kind::kFilterBlock);
    const int line = peek().line;
    ExprPtr chain;  // null: the block's rendered body
    do {
      if (chain) next();  // the '|' between filters
      auto filter = make_expr(Expr::Kind::kFilter, line);
      filter->name = expect_name("a filter name");
      filter->children.push_back(std::move(chain));
      if (at_op("(")) parse_call_args(*filter);
      chain = std::move(filter);
    } while (at_op("|"));
    expect_block_end();
    node->expr = std::move(chain);
    std::string ended_by;
    node->body = parse_body({"endfilter"}, "filter", line, &ended_by);
    expect_block_end();
    return node;
  }

  std::unique_ptr<Node> parse_set() {
    auto node = make_node(Node::Kind::kSet);
    const int line = peek().line;
    node->targets.push_back(expect_name("a variable name"));
    if (at_op(".")) {
      next();
      node->attribute = expect_name("an attribute name");
    } else {
      while (at_op(",")) {
        next();
        node->targets.push_back(expect_name("a variable name"));
      }
    }
    if (peek().type == TokenType::kBlockEnd && node->targets.size() == 1 && node->attribute.empty()) {
      next();
      node->kind = Node::Kind::kSetBlock;
      std::string ended_by;
      node->body = parse_body({"endset"}, "set", line, &ended_by);
      expect_block_end();
      return node;
    }
    expect_op("=");
    node->expr = parse_tuple_or_expression();
    expect_block_end();
    return node;
  }

  std::unique_ptr<Node> parse_macro() {
    auto node = make_node(Node::Kind::kMacro);
    const int line = peek().line;
    node->name = expect_name("a macro name");
    expect_op("(");
    while (!at_op(")")) {
      std::string param = expect_name("a parameter name");
      ExprPtr default_value;
      if (at_op("=")) {
        next();
        default_value = parse_expression();
      }
      node->params.emplace_back(std::move(param), std::move(default_value));
      if (!at_op(",")) break;
      next();
    }
    expect_op(")");
    expect_block_end();
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    std::string ended_by;
    node->body = parse_body({"endmacro"}, "macro", line, &ended_by);
    loop_depth_ = saved_loop_depth;
    if (peek().type == TokenType::kName) next();  // {% endmacro name %}
    expect_block_end();
    return node;
  }

  std::unique_ptr<Node> parse_loop_control(const std::string& tag) {
    if (loop_depth_ == 0) fail("'" + tag + "' outside a loop");
    auto node = make_node(tag == "break" ? Node::Kind::kBreak : Node::Kind::kContinue);
    expect_block_end();
    return node;
  }

  std::unique_ptr<Node> parse_scope(const std::string& tag) {
    auto node = make_node(Node::Kind::kScope);
    const int line = peek().line;
    expect_block_end();
    std::string ended_by;
    node->body = parse_body({"end" + tag}, tag, line, &ended_by);
    expect_block_end();
    return node;
  }

  // ---- expressions ----
  ExprPtr make_expr(Expr::Kind kind, int line) const {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Sets e's height from its (already measured) children; a tree taller than kMaxNesting is an error.
  ExprPtr measured(ExprPtr e) const {
    int below = 0;
    for (const ExprPtr& child : e->children) {
      if (child) below = std::max(below, child->height);
    }
    for (const auto& [name, value] : e->keywords) {
      if (value) below = std::max(below, value->height);
    }
    e->height = below + 1;
    if (e->height > kMaxNesting) {
      throw TemplateError("expression nested too deeply (the limit is " + std::to_string(kMaxNesting) +
                              " levels, e.g. operators in one chain)",
                          e->line);
    }
    return e;
  }

  ExprPtr binary(std::string op, ExprPtr left, ExprPtr right, int line) const {
    auto e = make_expr(Expr::Kind::kBinary, line);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return measured(std::move(e));
  }

  // `a, b` without brackets (the right side of `set x, y = ...`) is a tuple.
  ExprPtr parse_tuple_or_expression() {
    ExprPtr first = parse_expression();
    if (!at_op(",")) return first;
    auto tuple = make_expr(Expr::Kind::kTuple, first->line);
    tuple->children.push_back(std::move(first));
    while (at_op(",")) {
      next();
      if (peek().type == TokenType::kBlockEnd) break;
      tuple->children.push_back(parse_expression());
    }
    return measured(std::move(tuple));
  }

  ExprPtr parse_expression(bool allow_conditional = true) {
    DepthGuard guard(*this);
    ExprPtr expr = parse_or();
    while (allow_conditional && at_name("if")) {
      const int line = next().line;
      auto conditional = make_expr(Expr::Kind::kConditional, line);
      conditional->children.push_back(parse_or());
      conditional->children.push_back(std::move(expr));
      if (at_name("else")) {
        next();
        conditional->children.push_back(parse_expression());
      } else {
        conditional->children.push_back(nullptr);
      }
      expr = measured(std::move(conditional));
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (at_name("or")) {
      const int line = next().line;
      left = binary("or", std::move(left), parse_and(), line);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (at_name("and")) {
      const int line = next().line;
      left = binary("and", std::move(left), parse_not(), line);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      DepthGuard guard(*this);
      auto e = make_expr(Expr::Kind::kUnary, next().line);
      e->name = "not";
      e->children.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    ExprPtr compare;
    while (true) {
      std::string op;
      const Token& t = peek();
      if (t.type == TokenType::kOperator && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                             t.text == "<=" || t.text == ">" || t.text == ">=")) {
        op = t.text;
        next();
      } else if (at_name("in")) {
        op = "in";
        next();
      } else if (at_name("not") && at_name("in", 1)) {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!compare) {
        compare = make_expr(Expr::Kind::kCompare, first->line);
        compare->children.push_back(std::move(first));
      }
      compare->ops.push_back(op);
      compare->children.push_back(parse_math1());
    }
    return compare ? measured(std::move(compare)) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (at_op("+") || at_op("-")) {
      const Token op = next();
      left = binary(op.text, std::move(left), parse_concat(), op.line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (at_op("~")) {
      const int line = next().line;
      left = binary("~", std::move(left), parse_math2(), line);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Token op = next();
      left = binary(op.text, std::move(left), parse_pow(), op.line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (at_op("**")) {
      const int line = next().line;
      left = binary("**", std::move(left), parse_unary(true), line);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      const Token op = next();
      node = make_expr(Expr::Kind::kUnary, op.line);
      node->name = op.text;
      node->children.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(measured(std::move(node)));
    if (with_filter) node = parse_filters_and_tests(std::move(node));
    return measured(std::move(node));
  }

  ExprPtr parse_primary() {
    const Token t = peek();
    switch (t.type) {
      case TokenType::kName: {
        next();
        auto e = make_expr(Expr::Kind::kLiteral, t.line);
        if (t.text == "true" || t.text == "True")
          e->literal = Value(true);
        else if (t.text == "false" || t.text == "False")
          e->literal = Value(false);
        else if (t.text == "none" || t.text == "None")
          e->literal = Value::none();
        else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case TokenType::kString: {
        std::string text;
        while (peek().type == TokenType::kString) text += next().text;  // 'a' 'b' == 'ab'
        auto e = make_expr(Expr::Kind::kLiteral, t.line);
        e->literal = Value(std::move(text));
        return e;
      }
      case TokenType::kInteger: {
        next();
        auto e = make_expr(Expr::Kind::kLiteral, t.line);
        e->literal = Value(static_cast<int64_t>(std::stoll(t.text)));
        return e;
      }
      case TokenType::kFloat: {
        next();
        auto e = make_expr(Expr::Kind::kLiteral, t.line);
        e->literal = Value(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      default:
        break;
    }
    if (at_op("(")) return parse_parenthesized();
    if (at_op("[")) {
      auto list = make_expr(Expr::Kind::kList, next().line);
      parse_items("]", list->children);
      return list;
    }
    if (at_op("{")) return parse_dict();
    fail_unexpected("an expression");
  }

  void parse_items(std::string_view close, std::vector<ExprPtr>& items) {
    while (!at_op(close)) {
      items.push_back(parse_expression());
      if (!at_op(",")) break;
      next();
    }
    expect_op(close);
  }

  ExprPtr parse_parenthesized() {
    const int line = next().line;
    if (at_op(")")) {
      next();
      return make_expr(Expr::Kind::kTuple, line);
    }
    ExprPtr first = parse_expression();
    if (!at_op(",")) {
      expect_op(")");
      return first;
    }
    auto tuple = make_expr(Expr::Kind::kTuple, line);
    tuple->children.push_back(std::move(first));
    next();
    parse_items(")", tuple->children);
    return tuple;
  }

  ExprPtr parse_dict() {
    auto dict = make_expr(Expr::Kind::kDict, next().line);
    while (!at_op("}")) {
      dict->children.push_back(parse_expression());
      expect_op(":");
      dict->children.push_back(parse_expression());
      if (!at_op(",")) break;
      next();
    }
    expect_op("}");
    return dict;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (at_op(".")) {
        const int line = next().line;
        const Token t = peek();
        if (t.type == TokenType::kInteger) {  // seq.0 is seq[0]
          next();
          auto index = make_expr(Expr::Kind::kLiteral, line);
          index->literal = Value(static_cast<int64_t>(std::stoll(t.text)));
          auto e = make_expr(Expr::Kind::kSubscript, line);
          e->children.push_back(std::move(node));
          e->children.push_back(std::move(index));
          node = measured(std::move(e));
          continue;
        }
        auto e = make_expr(Expr::Kind::kAttribute, line);
        e->name = expect_name("an attribute name");
        e->children.push_back(std::move(node));
        node = measured(std::move(e));
      } else if (at_op("[")) {
        node = measured(parse_subscript(std::move(node)));
      } else if (at_op("(")) {
        node = measured(parse_call(std::move(node), Expr::Kind::kCall));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const int line = next().line;
    ExprPtr start;
    if (!at_op(":")) start = parse_expression();
    if (!at_op(":")) {
      expect_op("]");
      auto e = make_expr(Expr::Kind::kSubscript, line);
      e->children.push_back(std::move(node));
      e->children.push_back(std::move(start));
      return e;
    }
    next();
    auto slice = make_expr(Expr::Kind::kSlice, line);
    slice->children.push_back(std::move(node));
    slice->children.push_back(std::move(start));
    slice->children.push_back(at_op(":") || at_op("]") ? nullptr : parse_expression());
    ExprPtr step;
    if (at_op(":")) {
      next();
      if (!at_op("]")) step = parse_expression();
    }
    slice->children.push_back(std::move(step));
    expect_op("]");
    return slice;
  }

  // Call arguments: `(a, b, name=c)`; children[0] is the callee or filtered value.
  void parse_call_args(Expr& call) {
    expect_op("(");
    while (!at_op(")")) {
      if (peek().type == TokenType::kName && at_op("=", 1)) {
        std::string name = next().text;
        next();
        call.keywords.emplace_back(std::move(name), parse_expression());
      } else {
        if (!call.keywords.empty()) fail("a positional argument follows a keyword argument");
        call.children.push_back(parse_expression());
      }
      if (!at_op(",")) break;
      next();
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee, Expr::Kind kind) {
    auto call = make_expr(kind, peek().line);
    call->children.push_back(std::move(callee));
    parse_call_args(*call);
    return call;
  }

  ExprPtr parse_filters_and_tests(ExprPtr node) {
    while (true) {
      if (at_op("|")) {
        const int line = next().line;
        auto filter = make_expr(Expr::Kind::kFilter, line);
        filter->name = expect_name("a filter name");
        filter->children.push_back(std::move(node));
        if (at_op("(")) parse_call_args(*filter);
        node = measured(std::move(filter));
      } else if (at_name("is")) {
        node = measured(parse_test(std::move(node)));
      } else if (at_op("(")) {
        node = measured(parse_call(std::move(node), Expr::Kind::kCall));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_test(ExprPtr node) {
    auto test = make_expr(Expr::Kind::kTest, next().line);
    if (at_name("not")) {
      next();
      test->negated = true;
    }
    test->name = expect_name("a test name");
    test->children.push_back(std::move(node));
    const Token& t = peek();
    const bool starts_argument = t.type == TokenType::kName || t.type == TokenType::kString ||
                                 t.type == TokenType::kInteger || t.type == TokenType::kFloat || at_op("[") ||
                                 at_op("{");
    if (at_op("(")) {
      parse_call_args(*test);
    } else if (starts_argument && !at_name("else") && !at_name("or") && !at_name("and")) {
      if (at_name("is")) fail("tests cannot be chained with 'is'");
      test->children.push_back(parse_postfix(parse_primary()));
    }
    return test;
  }

  std::vector<Token> tokens_;
  size_t index_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

NodeList parse_template(const std::string& source) { return Parser(tokenize(source)).parse_all(); }

}  // namespace brisk::jinja
