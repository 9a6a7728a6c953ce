// What a template can call without defining it: filters (`x | trim`), tests (`x is defined`),
// methods of strings and dicts (`s.strip()`, `d.get(k)`), attribute/item lookup with jinja2's
// fallbacks, and the global functions every template sees (range, namespace, dict). All throw
// TemplateError on misuse; the evaluator adds the line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "serve/jinja_value.h"

namespace brisk::jinja {

// obj.name: a dict's item, a namespace's attribute, else Undefined (jinja2's getattr).
Value get_attribute(const Value& object, const std::string& name);
// obj[key]: list/string index (negative counts from the end), dict key; a miss is Undefined.
Value get_item(const Value& object, const Value& key);
// `needle in haystack`: substring, list member or dict key.
bool contains(const Value& haystack, const Value& needle);

// Python's arithmetic: + - * / // % ** on numbers, + on strings and lists, * repetition,
// and ~ (string concatenation of any two values). Undefined operands are errors except for ~.
Value binary_operation(const std::string& op, const Value& left, const Value& right);
Value unary_minus(const Value& operand);
// seq[start:stop:step] on lists and strings; absent bounds are nullopt.
Value slice(const Value& sequence, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step);

bool has_method(const Value& object, const std::string& name);
Value call_method(const Value& object, const std::string& name, const CallArgs& args);

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);
bool apply_test(const std::string& name, const Value& input, const CallArgs& args);

ValueDict standard_globals();

// The argument at `position`, else the keyword `name`, else Undefined.
const Value& argument(const CallArgs& args, size_t position, const char* name);
// Throws TemplateError naming `what` unless the value is a string / an integer.
const std::string& expect_string(const Value& value, const std::string& what);
int64_t expect_int(const Value& value, const std::string& what);

// Guards against templates that would build enormous values (fuzzed or hostile input).
constexpr int64_t kMaxSequenceLength = 100'000;
constexpr size_t kMaxStringBytes = size_t{64} << 20;

}  // namespace brisk::jinja
