// Python's operator semantics for template expressions. Integers are 64-bit (Python's are
// unbounded): an overflow is an error rather than a wrong answer.
#include <cmath>

#include "serve/jinja_builtins.h"
#include "serve/jinja_strings.h"

namespace brisk::jinja {
namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throw TemplateError("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
                      b.type_name() + "'");
}

[[noreturn]] void undefined_operand(const Value& v) {
  throw TemplateError(v.undefined_name().empty() ? "an undefined value used in arithmetic"
                                                 : v.undefined_name());
}

template <class Op>
Value checked(Op op, int64_t x, int64_t y) {
  int64_t result = 0;
  if (op(x, y, &result)) throw TemplateError("integer overflow");
  return Value(result);
}

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) throw TemplateError("integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) throw TemplateError("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

Value repeat(const Value& sequence, int64_t times) {
  const int64_t unit = sequence.is_string() ? static_cast<int64_t>(sequence.as_string().size())
                                            : static_cast<int64_t>(sequence.as_list().size());
  // An empty sequence repeated stays empty: without this, '' * 10**10 looped 10^10 times (found by
  // the chat template fuzzer; reachable through a request's chat_template).
  if (times <= 0 || unit == 0) return sequence.is_string() ? Value("") : Value(ValueList{});
  if (unit > 0 && times > static_cast<int64_t>(kMaxStringBytes) / unit)
    throw TemplateError("repetition result too large");
  if (sequence.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += sequence.as_string();
    return Value(std::move(out));
  }
  ValueList out;
  for (int64_t i = 0; i < times; ++i)
    out.insert(out.end(), sequence.as_list().begin(), sequence.as_list().end());
  return Value(std::move(out));
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  const bool ints = a.is_integer() && b.is_integer();
  const int64_t x = ints ? a.as_int() : 0, y = ints ? b.as_int() : 0;
  const double fx = a.as_double(), fy = b.as_double();
  auto add = [](int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); };
  auto sub = [](int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); };
  auto mul = [](int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); };
  if (op == "+") return ints ? checked(add, x, y) : Value(fx + fy);
  if (op == "-") return ints ? checked(sub, x, y) : Value(fx - fy);
  if (op == "*") return ints ? checked(mul, x, y) : Value(fx * fy);
  if (op == "/") {
    if (fy == 0) throw TemplateError("division by zero");
    return Value(fx / fy);
  }
  if (op == "//") {
    if (ints) return Value(floor_div(x, y));
    if (fy == 0) throw TemplateError("float floor division by zero");
    return Value(std::floor(fx / fy));
  }
  if (op == "%") {
    if (ints) return Value(x - floor_div(x, y) * y);
    if (fy == 0) throw TemplateError("float modulo by zero");
    double m = std::fmod(fx, fy);
    if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
    return Value(m);
  }
  // "**"
  if (ints && y >= 0) {
    int64_t result = 1, base = x;
    for (int64_t e = y; e > 0; e >>= 1) {
      if ((e & 1) && __builtin_mul_overflow(result, base, &result)) throw TemplateError("integer overflow");
      if (e > 1 && __builtin_mul_overflow(base, base, &base)) throw TemplateError("integer overflow");
    }
    return Value(result);
  }
  return Value(std::pow(fx, fy));
}

}  // namespace

Value binary_operation(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(a.to_string() + b.to_string());
  if (a.is_undefined()) undefined_operand(a);
  if (b.is_undefined()) undefined_operand(b);
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > kMaxStringBytes)
        throw TemplateError("string too long");
      // Markup + str (either side) escapes the plain string and stays Markup, as markupsafe does.
      if (a.is_markup() || b.is_markup())
        return Value::markup((a.is_markup() ? a.as_string() : html_escape(a.as_string())) +
                             (b.is_markup() ? b.as_string() : html_escape(b.as_string())));
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      ValueList out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value(std::move(out));
    }
    if (a.is_string()) throw TemplateError("can only concatenate str (not \"" + b.type_name() + "\") to str");
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && b.is_integer()) return repeat(a, b.as_int());
    if (a.is_integer() && (b.is_string() || b.is_list())) return repeat(b, a.as_int());
  }
  if (op == "%" && a.is_string())
    throw TemplateError("printf-style string formatting ('%') is not supported");
  unsupported(op, a, b);
}

Value unary_minus(const Value& v) {
  if (v.is_undefined()) undefined_operand(v);
  if (v.is_integer()) {
    if (v.as_int() == INT64_MIN) throw TemplateError("integer overflow");
    return Value(-v.as_int());
  }
  if (v.is_number()) return Value(-v.as_double());
  throw TemplateError("bad operand type for unary -: '" + v.type_name() + "'");
}

Value slice(const Value& sequence, std::optional<int64_t> start, std::optional<int64_t> stop,
            std::optional<int64_t> step) {
  if (sequence.is_list()) {
    ValueList out;
    const ValueList& items = sequence.as_list();
    for (int64_t i : slice_positions(static_cast<int64_t>(items.size()), start, stop, step))
      out.push_back(items[static_cast<size_t>(i)]);
    return Value(std::move(out));
  }
  if (sequence.is_string()) {
    const std::vector<uint32_t> cps = decode_utf8(sequence.as_string());
    std::vector<uint32_t> out;
    for (int64_t i : slice_positions(static_cast<int64_t>(cps.size()), start, stop, step))
      out.push_back(cps[static_cast<size_t>(i)]);
    return Value(encode_utf8(out));
  }
  if (sequence.is_undefined()) undefined_operand(sequence);
  throw TemplateError("'" + sequence.type_name() + "' object is not subscriptable");
}

}  // namespace brisk::jinja
