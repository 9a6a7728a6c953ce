// The parsed form of a template: expressions and statements as two small tagged trees. One
// struct per tree (a kind plus the fields each kind uses) keeps the evaluator a pair of switches.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "serve/jinja_value.h"

namespace brisk::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,      // literal
    kName,         // name
    kList,         // children: items
    kTuple,        // children: items (evaluates to a list)
    kDict,         // keywords: key expression in children[i], paired by index with children[i + 1]
    kAttribute,    // children[0].name
    kSubscript,    // children[0][children[1]]
    kSlice,        // children[0][children[1]:children[2]:children[3]] (null children are absent bounds)
    kCall,         // children[0](children[1..], keywords)
    kFilter,       // children[0] | name(children[1..], keywords)
    kTest,         // children[0] is [not] name(children[1..])
    kUnary,        // op children[0]: "-", "+", "not"
    kBinary,       // children[0] op children[1]: arithmetic, "~", "and", "or"
    kCompare,      // children[0] ops[0] children[1] ops[1] children[2] ...: "==", "<", "in", "not in"
    kConditional,  // children[1] if children[0] else children[2] (children[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;  // variable, attribute, filter or test name; operator for kUnary/kBinary
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> keywords;  // keyword arguments of calls/filters
  std::vector<std::string> ops;                           // comparison operators
  bool negated = false;                                   // `is not`
  int height = 1;  // levels of this tree (set by the parser, which bounds it)
};

struct Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (condition, body)...; else_body
    kFor,       // for targets in expr [if filter]: body; else_body when nothing was iterated
    kSet,       // set targets = expr; or set targets[0].attribute = expr (namespace assignment)
    kSetBlock,  // {% set targets[0] %}body{% endset %}
    kMacro,     // macro name(params) body
    kBreak,
    kContinue,
    kScope,  // body rendered in place ({% generation %} and other pass-through blocks)
    kFilterBlock,  // {% filter f(args) | g %}body{% endfilter %}: expr is the filter chain whose
                   // innermost input (a null child) is the rendered body
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;                                       // kFor: the `if` filter
  std::vector<std::string> targets;                     // kFor loop variables, kSet names
  std::string attribute;                                // kSet on a namespace attribute
  std::string name;                                     // kMacro
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro: name and default (may be null)
  std::vector<std::pair<ExprPtr, NodeList>> branches;   // kIf
  NodeList body;
  NodeList else_body;
};

// Throws TemplateError (with the line) on a syntax error.
NodeList parse_template(const std::string& source);

}  // namespace brisk::jinja
