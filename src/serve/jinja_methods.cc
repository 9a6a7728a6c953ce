// Attribute and item lookup, `in`, and the Python methods templates call on strings and dicts.
// Like transformers' ImmutableSandboxedEnvironment, nothing here mutates a value.
#include <algorithm>

#include "serve/jinja_builtins.h"
#include "serve/jinja_strings.h"

namespace brisk::jinja {

const Value& argument(const CallArgs& args, size_t position, const char* name) {
  static const Value kUndefined;
  if (position < args.positional.size()) return args.positional[position];
  if (const Value* v = args.keyword_arg(name)) return *v;
  return kUndefined;
}

const std::string& expect_string(const Value& value, const std::string& what) {
  if (!value.is_string()) throw TemplateError(what + " must be a string, not " + value.type_name());
  return value.as_string();
}

int64_t expect_int(const Value& value, const std::string& what) {
  if (!value.is_integer()) throw TemplateError(what + " must be an integer, not " + value.type_name());
  return value.as_int();
}

Value get_attribute(const Value& object, const std::string& name) {
  if (object.is_undefined()) {
    throw TemplateError(object.undefined_name().empty()
                            ? "cannot read attribute '" + name + "' of an undefined value"
                            : object.undefined_name());
  }
  if (object.is_mapping()) {
    if (const Value* v = object.as_dict().find(name)) return *v;
  }
  return Value::undefined("'" + object.type_name() + " object' has no attribute '" + name + "'");
}

Value get_item(const Value& object, const Value& key) {
  if (object.is_undefined()) {
    throw TemplateError(object.undefined_name().empty() ? "cannot index an undefined value"
                                                        : object.undefined_name());
  }
  if (key.is_integer() && (object.is_list() || object.is_string())) {
    int64_t index = key.as_int();
    if (object.is_list()) {
      const auto size = static_cast<int64_t>(object.as_list().size());
      if (index < 0) index += size;
      if (index >= 0 && index < size) return object.as_list()[static_cast<size_t>(index)];
    } else {
      const std::vector<uint32_t> cps = decode_utf8(object.as_string());
      const auto size = static_cast<int64_t>(cps.size());
      if (index < 0) index += size;
      if (index >= 0 && index < size) return Value(encode_utf8({cps[static_cast<size_t>(index)]}));
    }
    return Value::undefined(object.type_name() + " index " + std::to_string(key.as_int()) + " out of range");
  }
  if (key.is_string()) return get_attribute(object, key.as_string());
  return Value::undefined("'" + object.type_name() + " object' has no item " + key.repr());
}

bool contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      return haystack.as_string().find(expect_string(needle, "the left operand of 'in <string>'")) !=
             std::string::npos;
    case Value::Kind::kList:
      return std::any_of(haystack.as_list().begin(), haystack.as_list().end(),
                         [&](const Value& item) { return values_equal(item, needle); });
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      return needle.is_string() && haystack.as_dict().find(needle.as_string()) != nullptr;
    default:
      throw TemplateError("argument of type '" + haystack.type_name() + "' is not iterable");
  }
}

namespace {

const char* const kStringMethods[] = {"strip", "lstrip", "rstrip",  "split",   "startswith", "endswith",
                                      "upper", "lower",  "replace", "title",   "capitalize", "find",
                                      "count", "join",   "isdigit", "isalpha", "isspace"};
const char* const kDictMethods[] = {"get", "items", "keys", "values"};
const char* const kMutatingMethods[] = {"append", "extend",     "insert", "pop",     "remove", "clear",
                                        "update", "setdefault", "sort",   "reverse", "popitem"};

template <size_t N>
bool listed(const char* const (&names)[N], const std::string& name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

std::optional<std::string> optional_string(const Value& v, const std::string& what) {
  if (v.is_undefined() || v.is_none()) return std::nullopt;
  return expect_string(v, what);
}

// startswith/endswith take a string or a tuple (list) of strings.
bool matches_affix(const std::string& s, const Value& affixes, bool at_start) {
  auto one = [&](const Value& affix) {
    const std::string& a = expect_string(affix, "startswith/endswith argument");
    return s.size() >= a.size() &&
           (at_start ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0);
  };
  if (affixes.is_list()) return std::any_of(affixes.as_list().begin(), affixes.as_list().end(), one);
  return one(affixes);
}

Value string_method(const std::string& s, const std::string& name, const CallArgs& args) {
  const std::string where = "str." + name + "()";
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const StripSide side = name == "strip"    ? StripSide::kBoth
                           : name == "lstrip" ? StripSide::kLeft
                                              : StripSide::kRight;
    return Value(python_strip(s, optional_string(argument(args, 0, "chars"), where), side));
  }
  if (name == "split") {
    const Value& limit = argument(args, 1, "maxsplit");
    const int64_t maxsplit = limit.is_undefined() ? -1 : expect_int(limit, where + " maxsplit");
    ValueList parts;
    for (std::string& part : python_split(s, optional_string(argument(args, 0, "sep"), where), maxsplit)) {
      parts.emplace_back(std::move(part));
    }
    return Value(std::move(parts));
  }
  if (name == "startswith" || name == "endswith")
    return Value(matches_affix(s, argument(args, 0, "prefix"), name == "startswith"));
  if (name == "upper") return Value(ascii_upper(s));
  if (name == "lower") return Value(ascii_lower(s));
  if (name == "title") return Value(python_title(s));
  if (name == "capitalize") return Value(python_capitalize(s));
  if (name == "replace") {
    const Value& count = argument(args, 2, "count");
    return Value(python_replace(s, expect_string(argument(args, 0, "old"), where),
                                expect_string(argument(args, 1, "new"), where),
                                count.is_undefined() ? -1 : expect_int(count, where + " count")));
  }
  if (name == "find") {
    const size_t at = s.find(expect_string(argument(args, 0, "sub"), where));
    return Value(at == std::string::npos ? int64_t{-1} : code_point_count(s.substr(0, at)));
  }
  if (name == "count") {
    const std::string& sub = expect_string(argument(args, 0, "sub"), where);
    if (sub.empty()) return Value(code_point_count(s) + 1);
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& item : argument(args, 0, "iterable").iterate()) {
      if (!first) out += s;
      out += expect_string(item, where + " item");
      first = false;
    }
    return Value(std::move(out));
  }
  const std::vector<uint32_t> cps = decode_utf8(s);
  auto all = [&](auto predicate) { return !cps.empty() && std::all_of(cps.begin(), cps.end(), predicate); };
  if (name == "isdigit") return Value(all([](uint32_t c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha") return Value(all([](uint32_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }));
  return Value(all(is_python_space));  // isspace
}

Value dict_method(const ValueDict& dict, const std::string& name, const CallArgs& args) {
  if (name == "get") {
    const Value* found = dict.find(expect_string(argument(args, 0, "key"), "dict.get() key"));
    if (found) return *found;
    const Value& fallback = argument(args, 1, "default");
    return fallback.is_undefined() ? Value::none() : fallback;
  }
  ValueList out;
  for (const auto& [key, value] : dict.items) {
    if (name == "items")
      out.push_back(Value::tuple({Value(key), value}));
    else if (name == "keys")
      out.emplace_back(key);
    else
      out.push_back(value);
  }
  return Value(std::move(out));
}

}  // namespace

bool has_method(const Value& object, const std::string& name) {
  if (object.is_string()) return listed(kStringMethods, name);
  if (object.is_dict()) return listed(kDictMethods, name) || listed(kMutatingMethods, name);
  if (object.is_list()) return listed(kMutatingMethods, name);
  return false;
}

Value call_method(const Value& object, const std::string& name, const CallArgs& args) {
  if (listed(kMutatingMethods, name)) {
    throw TemplateError(object.type_name() + "." + name + "() is not allowed: template values are immutable");
  }
  if (object.is_string()) return string_method(object.as_string(), name, args);
  return dict_method(object.as_dict(), name, args);
}

ValueDict standard_globals() {
  ValueDict globals;
  globals.set("range", Value::function([](const CallArgs& args) {
                int64_t start = 0, stop = 0, step = 1;
                const size_t n = args.positional.size();
                if (n == 0 || n > 3) throw TemplateError("range() takes 1 to 3 integer arguments");
                if (n == 1) stop = expect_int(args.positional[0], "range() argument");
                if (n >= 2) {
                  start = expect_int(args.positional[0], "range() argument");
                  stop = expect_int(args.positional[1], "range() argument");
                }
                if (n == 3) step = expect_int(args.positional[2], "range() step");
                if (step == 0) throw TemplateError("range() step must not be zero");
                ValueList out;
                for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
                  if (static_cast<int64_t>(out.size()) >= kMaxSequenceLength)
                    throw TemplateError("range() too long");
                  out.emplace_back(i);
                }
                return Value(std::move(out));
              }));
  auto keywords_to_dict = [](const CallArgs& args, const char* what) {
    ValueDict dict;
    for (const Value& positional : args.positional) {
      if (!positional.is_dict())
        throw TemplateError(std::string(what) + "() takes keyword arguments or a dict");
      for (const auto& [k, v] : positional.as_dict().items) dict.set(k, v);
    }
    for (const auto& [k, v] : args.keyword) dict.set(k, v);
    return dict;
  };
  globals.set("namespace", Value::function([keywords_to_dict](const CallArgs& args) {
                return Value::make_namespace(keywords_to_dict(args, "namespace"));
              }));
  globals.set("dict", Value::function([keywords_to_dict](const CallArgs& args) {
                return Value(keywords_to_dict(args, "dict"));
              }));
  return globals;
}

}  // namespace brisk::jinja
