// jinja2's built-in filters and tests that chat templates use, with transformers' tojson
// (json.dumps with ensure_ascii=False, keys in insertion order) in place of jinja2's own.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "serve/jinja_builtins.h"
#include "serve/jinja_strings.h"

namespace brisk::jinja {
namespace {

int64_t require_length(const Value& v, const char* what) {
  const std::optional<int64_t> n = v.length();
  if (!n) throw TemplateError(std::string(what) + ": object of type '" + v.type_name() + "' has no len()");
  return *n;
}

std::optional<int64_t> parse_python_int(std::string text) {
  text = python_strip(text, std::nullopt, StripSide::kBoth);
  text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
  if (text.empty() || text.size() > 19) return std::nullopt;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (*end != '\0') return std::nullopt;
  return v;
}

std::optional<double> parse_python_float(const std::string& text) {
  const std::string stripped = python_strip(text, std::nullopt, StripSide::kBoth);
  if (stripped.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(stripped.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return v;
}

Value int_filter(const Value& input, const CallArgs& args) {
  const Value& fallback = argument(args, 0, "default");
  const Value default_value = fallback.is_undefined() ? Value(int64_t{0}) : fallback;
  if (input.is_integer()) return Value(input.as_int());
  if (input.kind() == Value::Kind::kFloat) {
    const double f = input.as_double();
    if (!std::isfinite(f) || std::fabs(f) > 9.2e18) return default_value;
    return Value(static_cast<int64_t>(f));
  }
  if (input.is_string()) {
    if (auto v = parse_python_int(input.as_string())) return Value(*v);
    if (auto f = parse_python_float(input.as_string()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18) {
      return Value(static_cast<int64_t>(*f));
    }
  }
  return default_value;
}

Value float_filter(const Value& input, const CallArgs& args) {
  const Value& fallback = argument(args, 0, "default");
  const Value default_value = fallback.is_undefined() ? Value(0.0) : fallback;
  if (input.is_number()) return Value(input.as_double());
  if (input.is_string()) {
    if (auto f = parse_python_float(input.as_string())) return Value(*f);
  }
  return default_value;
}

// The arguments after the first `skip` positional ones (the test's own arguments).
CallArgs rest_of(const CallArgs& args, size_t skip) {
  CallArgs rest;
  for (size_t i = skip; i < args.positional.size(); ++i) rest.positional.push_back(args.positional[i]);
  return rest;
}

// select / reject / selectattr / rejectattr: keep items whose test result equals `keep`.
Value select_items(const Value& input, const CallArgs& args, bool by_attribute, bool keep) {
  ValueList out;
  std::string attribute;
  if (by_attribute) attribute = expect_string(argument(args, 0, "attribute"), "selectattr attribute");
  const size_t test_position = by_attribute ? 1 : 0;
  const Value& test = test_position < args.positional.size() ? args.positional[test_position] : Value();
  const CallArgs test_args = rest_of(args, test_position + 1);
  for (const Value& item : input.iterate()) {
    const Value subject = by_attribute ? get_attribute(item, attribute) : item;
    const bool passed = test.is_undefined()
                            ? subject.truthy()
                            : apply_test(expect_string(test, "test name"), subject, test_args);
    if (passed == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

Value map_items(const Value& input, const CallArgs& args) {
  ValueList out;
  if (const Value* attribute = args.keyword_arg("attribute")) {
    const Value* fallback = args.keyword_arg("default");
    for (const Value& item : input.iterate()) {
      Value v = get_attribute(item, expect_string(*attribute, "map attribute"));
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return Value(std::move(out));
  }
  const std::string& filter = expect_string(argument(args, 0, "filter"), "map filter name");
  const CallArgs filter_args = rest_of(args, 1);
  for (const Value& item : input.iterate()) out.push_back(apply_filter(filter, item, filter_args));
  return Value(std::move(out));
}

Value sorted(const Value& input, const CallArgs& args) {
  ValueList items = input.iterate();
  const Value& attribute = argument(args, 2, "attribute");
  auto key = [&](const Value& v) {
    return attribute.is_undefined() ? v : get_attribute(v, expect_string(attribute, "sort attribute"));
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Value& a, const Value& b) { return value_less(key(a), key(b)); });
  if (argument(args, 0, "reverse").truthy()) std::reverse(items.begin(), items.end());
  return Value(std::move(items));
}

Value indent(const Value& input, const CallArgs& args) {
  const Value& width_arg = argument(args, 0, "width");
  const std::string pad =
      width_arg.is_string()
          ? width_arg.as_string()
          : std::string(static_cast<size_t>(std::clamp<int64_t>(
                            width_arg.is_undefined() ? 4 : expect_int(width_arg, "indent width"), 0, 1024)),
                        ' ');
  const bool first = argument(args, 1, "first").truthy(), blank = argument(args, 2, "blank").truthy();
  const std::vector<std::string> lines = python_split(input.to_string(), std::string("\n"), -1);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\n";
    if ((i > 0 || first) && (blank || !lines[i].empty())) out += pad;
    out += lines[i];
  }
  return Value(std::move(out));
}

Value extreme(const Value& input, bool want_max) {
  const ValueList items = input.iterate();
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const Value* best = &items[0];
  for (const Value& item : items) {
    if (want_max ? value_less(*best, item) : value_less(item, *best)) best = &item;
  }
  return *best;
}

}  // namespace

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
  if (name == "trim") {
    const Value& chars = argument(args, 0, "chars");
    return Value(python_strip(
        input.to_string(), chars.is_string() ? std::optional<std::string>(chars.as_string()) : std::nullopt,
        StripSide::kBoth));
  }
  if (name == "upper") return Value(ascii_upper(input.to_string()));
  if (name == "lower") return Value(ascii_lower(input.to_string()));
  if (name == "capitalize") return Value(python_capitalize(input.to_string()));
  if (name == "title") return Value(python_title(input.to_string()));
  // Markup (jinja2 with autoescape off, as transformers renders): safe marks a string as Markup,
  // escape escapes once (Markup passes through), forceescape always; string keeps Markup.
  if (name == "string") return input.is_markup() ? input : Value(input.to_string());
  if (name == "safe") return input.is_markup() ? input : Value::markup(input.to_string());
  if (name == "e" || name == "escape") return input.is_markup() ? input : Value::markup(html_escape(input.to_string()));
  if (name == "forceescape") return Value::markup(html_escape(input.to_string()));
  if (name == "length" || name == "count") return Value(require_length(input, "length"));
  if (name == "int") return int_filter(input, args);
  if (name == "float") return float_filter(input, args);
  if (name == "list") return Value(input.iterate());
  if (name == "abs") {
    if (input.is_integer()) return Value(input.as_int() < 0 ? -input.as_int() : input.as_int());
    if (input.is_number()) return Value(std::fabs(input.as_double()));
    throw TemplateError("abs: bad operand type '" + input.type_name() + "'");
  }
  if (name == "tojson") {
    const Value& indent_arg = argument(args, 0, "indent");
    std::optional<int> indent;
    if (!indent_arg.is_undefined() && !indent_arg.is_none())
      indent = static_cast<int>(std::clamp<int64_t>(expect_int(indent_arg, "tojson indent"), 0, 64));
    return Value(to_python_json(input, indent));
  }
  if (name == "default" || name == "d") {
    const bool use_default =
        input.is_undefined() || (argument(args, 1, "boolean").truthy() && !input.truthy());
    if (!use_default) return input;
    const Value& fallback = argument(args, 0, "default_value");
    return fallback.is_undefined() ? Value("") : fallback;
  }
  if (name == "first" || name == "last") {
    const ValueList items = input.iterate();
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const Value& separator = argument(args, 0, "d");
    const Value& attribute = argument(args, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : input.iterate()) {
      if (!first) out += separator.to_string();
      out +=
          (attribute.is_undefined() ? item : get_attribute(item, expect_string(attribute, "join attribute")))
              .to_string();
      first = false;
      if (out.size() > kMaxStringBytes) throw TemplateError("join: result too long");
    }
    return Value(std::move(out));
  }
  if (name == "replace") {
    const Value& count = argument(args, 2, "count");
    return Value(python_replace(
        input.to_string(), argument(args, 0, "old").to_string(), argument(args, 1, "new").to_string(),
        count.is_undefined() || count.is_none() ? -1 : expect_int(count, "replace count")));
  }
  if (name == "items") {
    if (input.is_undefined()) return Value(ValueList{});
    if (!input.is_mapping()) throw TemplateError("items: expected a mapping, got " + input.type_name());
    CallArgs none;
    return call_method(input, "items", none);
  }
  if (name == "select" || name == "reject") return select_items(input, args, false, name == "select");
  if (name == "selectattr" || name == "rejectattr")
    return select_items(input, args, true, name == "selectattr");
  if (name == "map") return map_items(input, args);
  if (name == "reverse") {
    if (input.is_string()) {
      std::vector<uint32_t> cps = decode_utf8(input.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value(encode_utf8(cps));
    }
    ValueList items = input.iterate();
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "sort") return sorted(input, args);
  if (name == "unique") {
    ValueList out;
    for (const Value& item : input.iterate()) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& seen) { return values_equal(seen, item); }))
        out.push_back(item);
    }
    return Value(std::move(out));
  }
  if (name == "min" || name == "max") return extreme(input, name == "max");
  if (name == "sum") {
    Value total(int64_t{0});
    for (const Value& item : input.iterate()) {
      if (!item.is_number()) throw TemplateError("sum: unsupported item type '" + item.type_name() + "'");
      total = total.is_integer() && item.is_integer() ? Value(total.as_int() + item.as_int())
                                                      : Value(total.as_double() + item.as_double());
    }
    return total;
  }
  if (name == "indent") return indent(input, args);
  if (name == "wordcount")
    return Value(static_cast<int64_t>(python_split(input.to_string(), std::nullopt, -1).size()));
  throw TemplateError("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& input, const CallArgs& args) {
  const Value& other = argument(args, 0, "other");
  const Value::Kind kind = input.kind();
  if (name == "defined") return !input.is_undefined();
  if (name == "undefined") return input.is_undefined();
  if (name == "none") return input.is_none();
  if (name == "boolean") return kind == Value::Kind::kBool;
  if (name == "true") return kind == Value::Kind::kBool && input.as_bool();
  if (name == "false") return kind == Value::Kind::kBool && !input.as_bool();
  if (name == "integer") return kind == Value::Kind::kInt;
  if (name == "float") return kind == Value::Kind::kFloat;
  if (name == "number") return input.is_number();
  if (name == "string") return input.is_string();
  if (name == "mapping") return input.is_dict();
  // jinja2 asks Python whether iter()/len() work: Undefined supports both.
  if (name == "iterable" || name == "sequence")
    return input.is_string() || input.is_list() || input.is_mapping() || input.is_undefined();
  if (name == "callable") return kind == Value::Kind::kFunction;
  if (name == "odd" || name == "even") {
    const int64_t v = expect_int(input, "the value of an '" + name + "' test");
    return (v % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const int64_t divisor = expect_int(other, "divisibleby argument");
    if (divisor == 0) throw TemplateError("divisibleby: division by zero");
    return expect_int(input, "the value of a 'divisibleby' test") % divisor == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return values_equal(input, other);
  if (name == "ne" || name == "!=") return !values_equal(input, other);
  if (name == "lt" || name == "lessthan" || name == "<") return value_less(input, other);
  if (name == "gt" || name == "greaterthan" || name == ">") return value_less(other, input);
  if (name == "le" || name == "<=") return !value_less(other, input);
  if (name == "ge" || name == ">=") return !value_less(input, other);
  if (name == "in") return contains(other, input);
  if (name == "sameas") {
    if (input.kind() != other.kind()) return false;
    return kind == Value::Kind::kNone || kind == Value::Kind::kUndefined ||
           (kind == Value::Kind::kBool && input.as_bool() == other.as_bool()) ||
           (kind == Value::Kind::kInt && input.as_int() == other.as_int());
  }
  if (name == "lower") return input.is_string() && ascii_lower(input.as_string()) == input.as_string();
  if (name == "upper") return input.is_string() && ascii_upper(input.as_string()) == input.as_string();
  throw TemplateError("unknown test '" + name + "'");
}

}  // namespace brisk::jinja
