// Values of brisk's Jinja subset: Python's data model cut down to what Hugging Face chat
// templates touch (None, bool, int, float, str, list, dict), plus Jinja's Undefined, namespace()
// objects and callables (globals such as range() and template macros). Lists, dicts and
// namespaces are shared by reference, as in Python, so `ns.found = true` is seen by every holder.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace brisk::jinja {

// A render or parse failure. The evaluator throws it (templates nest deeply; one catch at the
// public entry point turns it into a Result) and fills in the template line on the way out.
struct TemplateError : std::runtime_error {
  enum class Origin { kEngine, kRaisedByTemplate };  // raise_exception(...) keeps its bare message
  TemplateError(std::string message, int line = 0, Origin origin = Origin::kEngine)
      : std::runtime_error(std::move(message)), line(line), origin(origin) {}
  int line;
  Origin origin;
};

class Value;
using ValueList = std::vector<Value>;

// A dict keyed by strings (all JSON and template dicts are), kept in insertion order because
// Python's dicts are and tojson output depends on it.
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* keyword_arg(std::string_view name) const;
};
using NativeFunction = std::function<Value(const CallArgs&)>;  // throws TemplateError

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };

  Value() = default;  // Undefined
  static Value undefined(std::string name = "");
  static Value none();
  Value(bool b);                                    // NOLINT: literals convert implicitly, as in Python
  Value(int64_t i);                                 // NOLINT
  Value(int i) : Value(static_cast<int64_t>(i)) {}  // NOLINT
  Value(double f);                                  // NOLINT
  Value(std::string s);                             // NOLINT
  Value(const char* s) : Value(std::string(s)) {}   // NOLINT
  Value(ValueList list);                            // NOLINT
  Value(ValueDict dict);                            // NOLINT
  static Value tuple(ValueList items);              // a list that prints as (a, b), as Python's tuples do
  // markupsafe's Markup: a string already safe for HTML (the safe and escape filters make one);
  // escape leaves it as is, and + escapes the plain string it is joined with.
  static Value markup(std::string s);
  static Value make_namespace(ValueDict attributes);
  static Value function(NativeFunction fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && markup_; }
  bool is_number() const { return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_integer() const { return kind_ == Kind::kBool || kind_ == Kind::kInt; }
  bool is_list() const { return kind_ == Kind::kList; }  // lists and tuples
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }

  bool as_bool() const { return b_; }
  int64_t as_int() const;    // bool or int
  double as_double() const;  // any number
  const std::string& as_string() const { return s_; }
  const ValueList& as_list() const { return *list_; }
  ValueList& mutable_list() { return *list_; }
  const ValueDict& as_dict() const { return *dict_; }  // dict or namespace
  ValueDict& mutable_dict() { return *dict_; }
  const NativeFunction& as_function() const { return *fn_; }
  const std::string& undefined_name() const { return s_; }

  bool truthy() const;
  std::string type_name() const;  // Python's: 'str', 'NoneType', ...
  std::string to_string() const;  // str(x); Undefined renders as ""
  std::string repr() const;       // repr(x), used for items of printed lists and dicts

  // Python's len(); nullopt for values without one (numbers, None).
  std::optional<int64_t> length() const;
  // Iterating: list items, dict keys, string characters; Undefined iterates as empty.
  ValueList iterate() const;  // throws for None and numbers

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool tuple_ = false;
  bool markup_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;  // string contents, or the name of an undefined variable
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<NativeFunction> fn_;
};

bool values_equal(const Value& a, const Value& b);  // Python ==
// Python <, for numbers, strings and lists; throws TemplateError for other pairs.
bool value_less(const Value& a, const Value& b);

// Python's float repr: shortest round-trip digits, "1.0", "1e+16", "1.5e-05".
std::string python_float_repr(double f);

// json.dumps(x, ensure_ascii=False, indent=indent): transformers' tojson filter.
std::string to_python_json(const Value& value, std::optional<int> indent);

// JSON documents (request bodies, fixtures) as template values; objects keep their key order.
Value value_from_json(const nlohmann::ordered_json& json);
Value value_from_json(const nlohmann::json& json);

}  // namespace brisk::jinja
