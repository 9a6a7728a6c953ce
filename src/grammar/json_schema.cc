#include "grammar/json_schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "tokenizer/utf8.h"

namespace brisk::grammar {

namespace {

using Json = nlohmann::ordered_json;

// Larger counts would unroll into that many grammar rules; refused rather than loosened.
constexpr int64_t kMaxCount = 1024;
constexpr int kMaxSchemaDepth = 64;
// Declared property names an additional key is steered around, in characters.
constexpr int64_t kMaxTrieKey = 256;

// The JSON building blocks every schema grammar may use (unused rules cost nothing).
constexpr const char* kPrimitives = R"GBNF(
ws ::= " "?
json-hex ::= [0-9a-fA-F]
json-escape-scalar ::= [0-9a-cA-C] json-hex{3} | [dD] [0-7] json-hex{2} | [eEfF] json-hex{3}
json-char ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" json-escape-scalar )
json-string ::= "\"" json-char* "\""
json-integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
json-number ::= json-integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?
json-boolean ::= "true" | "false"
json-null ::= "null"
json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null
json-member ::= json-string ws ":" ws json-value ws
json-object ::= "{" ws ( json-member ( "," ws json-member )* )? "}"
json-array ::= "[" ws ( json-value ws ( "," ws json-value ws )* )? "]"
json-date ::= json-year "-" ( json-month-31 "-" json-day-31 | json-month-30 "-" json-day-30 | "02-" json-day-28 ) | json-leap-year "-02-29"
json-year ::= "000" [1-9] | "00" [1-9] [0-9] | "0" [1-9] [0-9]{2} | [1-9] [0-9]{3}
json-leap-year ::= [0-9]{2} json-leap-yy | json-leap-yy "00"
json-leap-yy ::= "0" [48] | [2468] [048] | [13579] [26]
json-month-31 ::= "0" [13578] | "1" [02]
json-month-30 ::= "0" [469] | "11"
json-day-28 ::= "0" [1-9] | "1" [0-9] | "2" [0-8]
json-day-30 ::= json-day-28 | "29" | "30"
json-day-31 ::= json-day-30 | "31"
json-time ::= ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
json-uuid ::= json-hex{8} "-" json-hex{4} "-" json-hex{4} "-" json-hex{4} "-" json-hex{12}
)GBNF";

// Keywords that only describe: accepted anywhere, no effect on the grammar.
const std::set<std::string>& annotation_keywords() {
  static const std::set<std::string> k = {"title", "description", "default", "examples", "$schema", "$id",
                                          "$comment", "deprecated", "readOnly", "writeOnly", "$defs",
                                          "definitions", "strict"};
  return k;
}

const std::set<std::string>& enforced_keywords() {
  static const std::set<std::string> k = {"type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
                                          "properties", "required", "additionalProperties", "items",
                                          "prefixItems", "minItems", "maxItems", "minLength", "maxLength",
                                          "format", "propertyNames"};
  return k;
}

std::string rule_safe(const std::string& name) {
  std::string out;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return out.empty() ? "x" : out;
}

class SchemaCompiler {
 public:
  SchemaCompiler(const Json& root, std::string prefix) : root_(root), prefix_(std::move(prefix)) {}

  // `start ::= ...` and its helpers (named prefix-...).
  Result<std::string> compile(const std::string& start) {
    BRISK_ASSIGN(expr, visit(root_, "schema", "#"));
    std::string out = start + " ::= " + expr + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out;
  }

 private:
  Error fail(const std::string& where, const std::string& what) const { return make_error("schema at " + where + ": " + what); }

  std::string add_rule(const std::string& name, const std::string& body) {
    std::string unique = prefix_ + "-" + rule_safe(name);
    for (int i = 2; rules_.count(unique); ++i) unique = prefix_ + "-" + rule_safe(name) + "-" + std::to_string(i);
    rules_[unique] = body;
    return unique;
  }

  Result<int64_t> count(const Json& s, const char* key, const std::string& where, int64_t fallback) {
    if (!s.contains(key)) return fallback;
    const Json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0)
      return fail(where, std::string("'") + key + "' must be a non-negative integer");
    if (v.get<int64_t>() > kMaxCount)
      return fail(where, std::string("'") + key + "' above " + std::to_string(kMaxCount) + " is not supported");
    return v.get<int64_t>();
  }

  // x{min,max} in GBNF; max < 0: unbounded.
  static std::string repeat(const std::string& x, int64_t min, int64_t max) {
    if (max < 0) return "( " + x + " ){" + std::to_string(min) + ",}";
    return "( " + x + " ){" + std::to_string(min) + "," + std::to_string(max) + "}";
  }

  Result<std::string> visit(const Json& s, const std::string& name, const std::string& where) {
    // Compiling recurses per level (and const values are dumped recursively): bounded.
    struct Level {
      int& depth;
      explicit Level(int& d) : depth(++d) {}
      ~Level() { --depth; }
    } level(depth_);
    if (depth_ > kMaxSchemaDepth) return fail(where, "the schema nests more than " + std::to_string(kMaxSchemaDepth) + " levels deep");
    if (s.is_boolean()) {
      if (!s.get<bool>()) return fail(where, "the schema 'false' accepts no value");
      return std::string("json-value");
    }
    if (!s.is_object()) return fail(where, "a schema must be an object or a boolean");
    for (const auto& [key, value] : s.items())
      if (!annotation_keywords().count(key) && !enforced_keywords().count(key) && key.rfind("x-", 0) != 0)
        return fail(where, "keyword '" + key + "' is not supported (brisk refuses what it cannot enforce)");

    if (s.contains("$ref")) {
      for (const auto& [key, value] : s.items())
        if (key != "$ref" && enforced_keywords().count(key))
          return fail(where, "keywords beside '$ref' ('" + key + "') are not supported");
      return ref(s["$ref"], where);
    }
    // A combinator's siblings would constrain every branch; merging them in is not attempted.
    for (const char* key : {"anyOf", "oneOf", "allOf"})
      if (s.contains(key))
        for (const auto& [other, value] : s.items())
          if (other != key && enforced_keywords().count(other))
            return fail(where, "keywords beside '" + std::string(key) + "' ('" + other +
                                   "') are not supported (move them into each branch)");
    if (s.contains("const") || s.contains("enum")) return literal_values(s, name, where);
    if (s.contains("anyOf")) return alternatives(s["anyOf"], name, where + "/anyOf");
    if (s.contains("oneOf")) {
      BRISK_TRY(check_one_of(s["oneOf"], where + "/oneOf"));
      return alternatives(s["oneOf"], name, where + "/oneOf");
    }
    if (s.contains("allOf")) {
      if (!s["allOf"].is_array() || s["allOf"].size() != 1)
        return fail(where, "'allOf' with more than one schema is not supported");
      return visit(s["allOf"][0], name, where + "/allOf/0");
    }
    if (s.contains("type") && s["type"].is_array()) {
      std::string alts;
      for (const Json& t : s["type"]) {
        if (!t.is_string()) return fail(where, "'type' entries must be strings");
        BRISK_ASSIGN(expr, typed(s, t.get<std::string>(), name + "-" + t.get<std::string>(), where));
        alts += (alts.empty() ? "" : " | ") + expr;
      }
      if (alts.empty()) return fail(where, "'type' is an empty list");
      return add_rule(name, alts);
    }
    if (s.contains("type")) {
      if (!s["type"].is_string()) return fail(where, "'type' must be a string or a list of strings");
      return typed(s, s["type"].get<std::string>(), name, where);
    }
    // No type: implied by the keywords present, else any value.
    if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties") ||
        s.contains("propertyNames"))
      return typed(s, "object", name, where);
    if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems"))
      return typed(s, "array", name, where);
    if (s.contains("minLength") || s.contains("maxLength") || s.contains("format")) return typed(s, "string", name, where);
    return std::string("json-value");
  }

  Result<std::string> alternatives(const Json& list, const std::string& name, const std::string& where) {
    if (!list.is_array() || list.empty()) return fail(where, "must be a non-empty array of schemas");
    std::string alts;
    for (size_t i = 0; i < list.size(); ++i) {
      BRISK_ASSIGN(expr, visit(list[i], name + "-" + std::to_string(i), where + "/" + std::to_string(i)));
      alts += (alts.empty() ? "" : " | ") + expr;
    }
    return add_rule(name, alts);
  }

  // A $ref gets one rule, named before its body is compiled, so recursive schemas terminate.
  Result<std::string> ref(const Json& target, const std::string& where) {
    if (!target.is_string()) return fail(where, "'$ref' must be a string");
    const std::string path = target.get<std::string>();
    if (auto it = refs_.find(path); it != refs_.end()) return it->second;
    if (path != "#" && path.rfind("#/", 0) != 0)
      return fail(where, "'$ref' " + path + " is not supported (only refs into this schema, #/...)");
    const Json* node = pointer(path);
    if (!node) return fail(where, "'$ref' " + path + " points nowhere");
    const std::string rule = add_rule("ref-" + path.substr(path.rfind('/') + 1), "");
    refs_[path] = rule;
    BRISK_ASSIGN(expr, visit(*node, rule + "-body", path));
    rules_[rule] = expr;
    return rule;
  }

  // The node a JSON pointer "#/a/b" names in the root schema, or null.
  const Json* pointer(const std::string& path) const {
    const Json* node = &root_;
    if (path == "#") return node;
    if (path.rfind("#/", 0) != 0) return nullptr;
    for (size_t start = 2; start <= path.size();) {
      const size_t end = std::min(path.find('/', start), path.size());
      std::string part = path.substr(start, end - start);
      for (size_t p; (p = part.find("~1")) != std::string::npos;) part.replace(p, 2, "/");
      for (size_t p; (p = part.find("~0")) != std::string::npos;) part.replace(p, 2, "~");
      if (!node->is_object() || !node->contains(part)) return nullptr;
      node = &(*node)[part];
      start = end + 1;
    }
    return node;
  }

  // enum / const: the listed values that the keywords beside them accept. Only type and string
  // lengths are weighed; any other keyword beside them is refused rather than ignored.
  Result<std::string> literal_values(const Json& s, const std::string& name, const std::string& where) {
    for (const auto& [key, value] : s.items())
      if (enforced_keywords().count(key) && !literal_siblings().count(key))
        return fail(where, "keywords beside 'enum' / 'const' ('" + key + "') are not supported (type, minLength, maxLength are)");
    std::vector<Json> values;
    if (s.contains("enum") && (!s["enum"].is_array() || s["enum"].empty()))
      return fail(where, "'enum' must be a non-empty array");
    if (s.contains("const")) {
      if (!s.contains("enum") || std::find(s["enum"].begin(), s["enum"].end(), s["const"]) != s["enum"].end())
        values.push_back(s["const"]);
    } else {
      values.assign(s["enum"].begin(), s["enum"].end());
    }
    BRISK_ASSIGN(min, count(s, "minLength", where, 0));
    BRISK_ASSIGN(max, count(s, "maxLength", where, -1));
    std::string alts;
    for (const Json& v : values) {
      BRISK_ASSIGN(typed_ok, type_accepts(s, v, where));
      const int64_t length = v.is_string() ? code_points(v.get<std::string>()) : 0;
      if (typed_ok && (!v.is_string() || (length >= min && (max < 0 || length <= max))))
        alts += (alts.empty() ? "" : " | ") + gbnf_literal(v.dump());
    }
    if (alts.empty()) return fail(where, "no value of 'enum' / 'const' passes the keywords beside it: the schema accepts no value");
    return add_rule(name, alts);
  }
  static const std::set<std::string>& literal_siblings() {
    static const std::set<std::string> k = {"enum", "const", "type", "minLength", "maxLength"};
    return k;
  }
  static int64_t code_points(const std::string& text) { return int64_t(decode_utf8(text).size()); }

  // Whether `value` has one of the types s["type"] names (any, without 'type').
  Result<bool> type_accepts(const Json& s, const Json& value, const std::string& where) const {
    if (!s.contains("type")) return true;
    const Json& t = s["type"];
    std::vector<Json> names = t.is_array() ? std::vector<Json>(t.begin(), t.end()) : std::vector<Json>{t};
    bool any = false;
    for (const Json& n : names) {
      if (!n.is_string()) return fail(where, "'type' must be a string or a list of strings");
      const std::string& type = n.get_ref<const std::string&>();
      if (!kind_of_type(type)) return fail(where, "unknown type '" + type + "'");
      any |= type == "integer" ? is_integer(value) : *kind_of_type(type) == kind_of(value);
    }
    return any;
  }
  static bool is_integer(const Json& v) {
    return v.is_number_integer() || (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()));
  }

  // oneOf means exactly one branch matches; written as alternatives, that holds only when nothing
  // written for one branch matches another. Proven per pair below, else the schema is refused.
  Status check_one_of(const Json& list, const std::string& where) const {
    if (!list.is_array()) return ok_status();  // alternatives() names the problem
    for (size_t i = 0; i < list.size(); ++i)
      for (size_t j = 0; j < list.size(); ++j)
        if (i != j && !rejects_all(list[j], list[i]))
          return fail(where, "branches " + std::to_string(i) + " and " + std::to_string(j) +
                                 " may match the same value, and 'oneOf' needs exactly one: not supported (use anyOf, or "
                                 "tell the branches apart by type, by enum/const values, or by a required const property)");
    return ok_status();
  }

  // Kinds of JSON value ("integer" is a number).
  enum class Kind : uint8_t { Null, Boolean, Number, String, Object, Array };
  static constexpr uint8_t kAllKinds = 0x3F;
  static uint8_t bit(Kind k) { return uint8_t(1u << unsigned(k)); }
  static Kind kind_of(const Json& v) {
    if (v.is_null()) return Kind::Null;
    if (v.is_boolean()) return Kind::Boolean;
    if (v.is_number()) return Kind::Number;
    if (v.is_string()) return Kind::String;
    return v.is_object() ? Kind::Object : Kind::Array;
  }
  static std::optional<Kind> kind_of_type(const std::string& type) {
    static const std::map<std::string, Kind> k = {{"null", Kind::Null},     {"boolean", Kind::Boolean},
                                                  {"integer", Kind::Number}, {"number", Kind::Number},
                                                  {"string", Kind::String}, {"object", Kind::Object},
                                                  {"array", Kind::Array}};
    auto it = k.find(type);
    return it == k.end() ? std::nullopt : std::optional<Kind>(it->second);
  }

  // The schema behind any chain of $refs (null: a broken chain, or one that loops).
  const Json* resolve(const Json& s) const {
    const Json* node = &s;
    for (int hops = 0; node->is_object() && node->contains("$ref"); ++hops) {
      if (hops == 32 || !(*node)["$ref"].is_string()) return nullptr;
      node = pointer((*node)["$ref"].get<std::string>());
      if (!node) return nullptr;
    }
    return node;
  }
  // The values a schema's const / enum allow, when it lists them.
  static std::optional<std::vector<Json>> listed_values(const Json& s) {
    if (!s.is_object()) return std::nullopt;
    if (s.contains("const")) return std::vector<Json>{s["const"]};
    if (s.contains("enum") && s["enum"].is_array()) return std::vector<Json>(s["enum"].begin(), s["enum"].end());
    return std::nullopt;
  }
  // The kinds of value a schema accepts (Accepted) or that its grammar writes (Written: where no
  // 'type' is given, visit() infers one from the keywords present). Conservative: all kinds where
  // unsure.
  enum class KindsOf { Accepted, Written };
  uint8_t kinds(const Json& schema, KindsOf which, int depth = 0) const {
    const Json* s = resolve(schema);
    if (!s || !s->is_object() || depth > 8) return kAllKinds;
    if (auto values = listed_values(*s)) {
      uint8_t k = 0;
      for (const Json& v : *values) k |= bit(kind_of(v));
      return k;
    }
    if (s->contains("type")) {
      const Json& t = (*s)["type"];
      uint8_t k = 0;
      for (const Json& n : t.is_array() ? std::vector<Json>(t.begin(), t.end()) : std::vector<Json>{t}) {
        auto kind = n.is_string() ? kind_of_type(n.get<std::string>()) : std::nullopt;
        if (!kind) return kAllKinds;
        k |= bit(*kind);
      }
      return k;
    }
    for (const char* key : {"anyOf", "oneOf", "allOf"})
      if (s->contains(key) && (*s)[key].is_array()) {
        uint8_t k = 0;
        for (const Json& branch : (*s)[key]) k |= kinds(branch, which, depth + 1);
        return k;
      }
    if (which == KindsOf::Accepted) return kAllKinds;
    for (const char* key : {"properties", "required", "additionalProperties", "propertyNames"})
      if (s->contains(key)) return bit(Kind::Object);
    for (const char* key : {"items", "prefixItems", "minItems", "maxItems"})
      if (s->contains(key)) return bit(Kind::Array);
    for (const char* key : {"minLength", "maxLength", "format"})
      if (s->contains(key)) return bit(Kind::String);
    return kAllKinds;
  }
  // Whether no value that `written`'s grammar writes is valid under `validator`.
  bool rejects_all(const Json& validator, const Json& written) const {
    const Json* v = resolve(validator);
    const Json* w = resolve(written);
    if (!v || !w || !v->is_object() || !w->is_object()) return false;
    const uint8_t accepted = kinds(*v, KindsOf::Accepted);
    const uint8_t writes = kinds(*w, KindsOf::Written);
    if ((writes & accepted) == 0) return true;
    if (auto values = listed_values(*w)) {  // each listed value: of a kind v refuses, or not in v's list
      const auto allowed = listed_values(*v);
      return std::all_of(values->begin(), values->end(), [&](const Json& x) {
        return (bit(kind_of(x)) & accepted) == 0 ||
               (allowed && std::find(allowed->begin(), allowed->end(), x) == allowed->end());
      });
    }
    // Objects told apart: a property `written` always writes, from a list `validator` does not share.
    if (writes != bit(Kind::Object) || !w->contains("required") || !(*w)["required"].is_array() ||
        !w->contains("properties") || !v->contains("properties") || !(*v)["properties"].is_object())
      return false;
    for (const Json& key : (*w)["required"]) {
      if (!key.is_string() || !(*w)["properties"].contains(key.get<std::string>()) ||
          !(*v)["properties"].contains(key.get<std::string>()))
        continue;
      const Json* mine = resolve((*w)["properties"][key.get<std::string>()]);
      const Json* theirs = resolve((*v)["properties"][key.get<std::string>()]);
      if (!mine || !theirs) continue;
      const auto written_values = listed_values(*mine), allowed = listed_values(*theirs);
      if (written_values && allowed &&
          std::none_of(written_values->begin(), written_values->end(), [&](const Json& x) {
            return std::find(allowed->begin(), allowed->end(), x) != allowed->end();
          }))
        return true;
    }
    return false;
  }

  Result<std::string> typed(const Json& s, const std::string& type, const std::string& name, const std::string& where) {
    if (type == "string") return string_rule(s, name, where);
    if (type == "integer") return std::string("json-integer");
    if (type == "number") return std::string("json-number");
    if (type == "boolean") return std::string("json-boolean");
    if (type == "null") return std::string("json-null");
    if (type == "object") return object_rule(s, name, where);
    if (type == "array") return array_rule(s, name, where);
    return fail(where, "unknown type '" + type + "'");
  }

  Result<std::string> string_rule(const Json& s, const std::string& name, const std::string& where) {
    if (s.contains("format")) {
      static const std::map<std::string, std::string> formats = {
          {"date", "json-date"}, {"time", "json-time"}, {"date-time", "json-date \"T\" json-time"}, {"uuid", "json-uuid"}};
      const Json& f = s["format"];
      auto it = f.is_string() ? formats.find(f.get<std::string>()) : formats.end();
      if (it == formats.end()) return fail(where, "format " + f.dump() + " is not supported (date, time, date-time, uuid are)");
      if (s.contains("minLength") || s.contains("maxLength")) return fail(where, "'format' with length limits is not supported");
      return add_rule(name, "\"\\\"\" " + it->second + " \"\\\"\"");
    }
    BRISK_ASSIGN(min, count(s, "minLength", where, 0));
    BRISK_ASSIGN(max, count(s, "maxLength", where, -1));
    if (max >= 0 && max < min) return fail(where, "maxLength is below minLength");
    if (min == 0 && max < 0) return std::string("json-string");
    return add_rule(name, "\"\\\"\" " + repeat("json-char", min, max) + " \"\\\"\"");
  }

  // Properties in the schema's order; each optional one may be left out. first-i: the first
  // member written is property i or a later one; after-i: the members after one already written
  // (each behind a comma). Both end with the additional members, when allowed.
  Result<std::string> object_rule(const Json& s, const std::string& name, const std::string& where) {
    std::vector<std::pair<std::string, std::string>> members;  // (member expression, key)
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return fail(where, "'required' must be an array of names");
      for (const Json& r : s["required"]) {
        if (!r.is_string()) return fail(where, "'required' must be an array of names");
        required.insert(r.get<std::string>());
      }
    }
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) return fail(where, "'properties' must be an object");
      for (const auto& [key, sub] : s["properties"].items()) {
        BRISK_ASSIGN(value, visit(sub, name + "-" + key, where + "/properties/" + key));
        members.emplace_back(gbnf_literal(Json(key).dump()) + " ws \":\" ws " + value + " ws", key);
      }
    }
    for (const std::string& r : required) {
      bool declared = false;
      for (const auto& m : members) declared |= m.second == r;
      if (!declared) return fail(where, "required property '" + r + "' has no schema in 'properties'");
    }
    BRISK_ASSIGN(names, key_schema(s, where));
    std::vector<std::string> declared;
    for (const auto& m : members) declared.push_back(m.second);
    for (const std::string& key : declared)  // propertyNames binds the declared properties too
      if (!names.accepts(key)) {
        if (required.count(key)) return fail(where, "required property '" + key + "' fails 'propertyNames'");
        members.erase(std::find_if(members.begin(), members.end(), [&](const auto& m) { return m.second == key; }));
      }
    std::string extra;  // the additional members' rule, or empty when none are written
    if (s.contains("additionalProperties") && !(s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>())) {
      BRISK_ASSIGN(value, visit(s["additionalProperties"], name + "-extra", where + "/additionalProperties"));
      BRISK_ASSIGN(key, extra_key(names, declared, name, where));
      if (!key.empty()) extra = add_rule(name + "-extra", key + " ws \":\" ws " + value + " ws");
    }
    const size_t n = members.size();
    std::vector<std::string> first(n + 1), after(n + 1);
    after[n] = extra.empty() ? "" : "( \",\" ws " + extra + " )*";
    first[n] = extra.empty() ? "" : "( " + extra + " " + after[n] + " )?";
    for (size_t i = n; i-- > 0;) {
      const std::string& member = members[i].first;
      const bool must = required.count(members[i].second) > 0;
      const std::string after_next = after[i + 1].empty() ? "" : " " + after[i + 1];
      after[i] = add_rule(name + "-after", "\",\" ws " + member + after_next + (must ? "" : " | " + or_empty(after[i + 1])));
      first[i] = add_rule(name + "-first", member + after_next + (must ? "" : " | " + or_empty(first[i + 1])));
    }
    return add_rule(name, "\"{\" ws " + first[0] + " \"}\"");
  }
  // The names an object's keys may take (propertyNames): a list, or lengths.
  struct KeySchema {
    std::optional<std::vector<std::string>> names;
    int64_t min = 0, max = -1;
    bool accepts(const std::string& key) const {
      if (names) return std::find(names->begin(), names->end(), key) != names->end();
      const int64_t n = code_points(key);
      return n >= min && (max < 0 || n <= max);
    }
  };
  Result<KeySchema> key_schema(const Json& s, const std::string& where) {
    KeySchema keys;
    if (!s.contains("propertyNames")) return keys;
    const Json& p = s["propertyNames"];
    const std::string at = where + "/propertyNames";
    if (p.is_boolean()) {
      if (!p.get<bool>()) keys.names.emplace();  // no key at all
      return keys;
    }
    if (!p.is_object()) return fail(at, "a schema must be an object or a boolean");
    for (const auto& [key, value] : p.items())
      if (!annotation_keywords().count(key) && !literal_siblings().count(key) && key.rfind("x-", 0) != 0)
        return fail(at, "keyword '" + key + "' is not supported here (type string, enum, const, minLength, maxLength are)");
    if (p.contains("type") && p["type"] != "string") return fail(at, "property names are strings: 'type' must be \"string\"");
    BRISK_ASSIGN(min, count(p, "minLength", at, 0));
    BRISK_ASSIGN(max, count(p, "maxLength", at, -1));
    keys.min = min;
    keys.max = max;
    if (auto values = listed_values(p)) {
      if (p.contains("const") && p.contains("enum") && p["enum"].is_array() &&
          std::find(p["enum"].begin(), p["enum"].end(), p["const"]) == p["enum"].end())
        values->clear();
      keys.names.emplace();
      for (const Json& v : *values)  // a key is a string: other values name none
        if (v.is_string() && code_points(v.get<std::string>()) >= min && (max < 0 || code_points(v.get<std::string>()) <= max))
          keys.names->push_back(v.get<std::string>());
    }
    return keys;
  }

  // An additional member's key: any name `keys` allows except the declared ones (a JSON parser
  // keeps the last of two equal keys, so a repeated or an unwritten optional name would be judged
  // by the additional schema, not its own). Empty: no name is left.
  Result<std::string> extra_key(const KeySchema& keys, const std::vector<std::string>& declared, const std::string& name,
                                const std::string& where) {
    if (keys.names) {
      std::string alts;
      for (const std::string& n : *keys.names)
        if (std::find(declared.begin(), declared.end(), n) == declared.end())
          alts += (alts.empty() ? "" : " | ") + gbnf_literal(Json(n).dump());
      return alts.empty() ? std::string() : add_rule(name + "-key", alts);
    }
    if (declared.empty()) {
      if (keys.min == 0 && keys.max < 0) return std::string("json-string");
      return add_rule(name + "-key", "\"\\\"\" " + repeat("json-char", keys.min, keys.max) + " \"\\\"\"");
    }
    // A trie of the declared names, by code point: the key follows it with literal characters
    // (an escape could spell a declared name another way) until it leaves it or stops short.
    std::vector<KeyNode> trie(1);
    for (const std::string& d : declared) {
      if (code_points(d) > kMaxTrieKey)  // key_rest recurses once per character
        return fail(where, "property names longer than " + std::to_string(kMaxTrieKey) +
                               " characters beside 'additionalProperties' are not supported");
      int32_t node = 0;
      for (uint32_t cp : decode_utf8(d)) {
        auto it = trie[size_t(node)].children.find(cp);
        if (it == trie[size_t(node)].children.end()) {
          trie.emplace_back();
          it = trie[size_t(node)].children.emplace(cp, int32_t(trie.size() - 1)).first;
        }
        node = it->second;
      }
      trie[size_t(node)].terminal = true;
    }
    const std::string rest = key_rest(trie, 0, 0, keys, name);
    return rest.empty() ? std::string() : add_rule(name + "-key", "\"\\\"\" " + rest);
  }
  struct KeyNode {
    bool terminal = false;
    std::map<uint32_t, int32_t> children;
  };
  // The rest of a key that has followed the trie to `node` (`depth` characters), closing quote
  // included; empty when no key can go on from here.
  std::string key_rest(const std::vector<KeyNode>& trie, int32_t node, int64_t depth, const KeySchema& keys,
                       const std::string& name) {
    std::string alts;
    auto add = [&](const std::string& alt) { alts += (alts.empty() ? "" : " | ") + alt; };
    const KeyNode& n = trie[size_t(node)];
    if (!n.terminal && depth >= keys.min) add("\"\\\"\"");
    if (keys.max < 0 || depth < keys.max) {
      std::string leave = "[^\"\\\\\\x00-\\x1F";  // a character no declared name has here
      for (const auto& [cp, child] : n.children) leave += "\\U" + hex8(cp);
      leave += "]";
      const int64_t lo = std::max<int64_t>(0, keys.min - depth - 1), hi = keys.max < 0 ? -1 : keys.max - depth - 1;
      add(leave + (hi == 0 ? "" : " " + repeat("json-char", lo, hi)) + " \"\\\"\"");
      for (const auto& [cp, child] : n.children) {
        if (cp < 0x20 || cp == '"' || cp == '\\') continue;  // spelled only by escapes
        const std::string next = key_rest(trie, child, depth + 1, keys, name);
        if (!next.empty()) add("\"\\U" + hex8(cp) + "\" " + next);
      }
    }
    return alts.empty() ? "" : add_rule(name + "-key", alts);
  }
  static std::string hex8(uint32_t cp) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08X", cp);
    return buf;
  }
  static std::vector<uint32_t> decode_utf8(const std::string& s) {  // nlohmann checked it is UTF-8
    std::vector<uint32_t> out;
    for (size_t i = 0, length = 0; i < s.size(); i += length) out.push_back(utf8::decode_char(s, i, &length));
    return out;
  }

  static std::string or_empty(const std::string& expr) { return expr.empty() ? "\"\"" : expr; }

  Result<std::string> array_rule(const Json& s, const std::string& name, const std::string& where) {
    BRISK_ASSIGN(min, count(s, "minItems", where, 0));
    BRISK_ASSIGN(max, count(s, "maxItems", where, -1));
    if (max >= 0 && max < min) return fail(where, "maxItems is below minItems");
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      if (!s["prefixItems"].is_array()) return fail(where, "'prefixItems' must be an array of schemas");
      for (size_t i = 0; i < s["prefixItems"].size(); ++i) {
        BRISK_ASSIGN(expr, visit(s["prefixItems"][i], name + "-" + std::to_string(i), where + "/prefixItems/" + std::to_string(i)));
        prefix.push_back(expr);
      }
      if (max >= 0 && int64_t(prefix.size()) > max) return fail(where, "more prefixItems than maxItems");
    }
    std::string item = "json-value";
    bool more = true;  // items beyond the prefix allowed
    if (s.contains("items")) {
      if (s["items"].is_boolean() && !s["items"].get<bool>()) more = false;
      else {
        BRISK_ASSIGN(expr, visit(s["items"], name + "-item", where + "/items"));
        item = expr;
      }
    }
    const int64_t fixed = int64_t(prefix.size());
    if (!more && min > fixed) return fail(where, "minItems exceeds the prefixItems and 'items' is false");
    // The prefix is written whole; the rest brings the count into [min, max].
    std::string body = "\"[\" ws";
    for (int64_t i = 0; i < fixed; ++i) body += (i ? " \",\" ws " : " ") + prefix[size_t(i)] + " ws";
    if (more) {
      const int64_t rest_min = std::max<int64_t>(0, min - fixed), rest_max = max < 0 ? -1 : max - fixed;
      if (fixed > 0) {
        if (rest_max != 0) body += " " + repeat("\",\" ws " + item + " ws", rest_min, rest_max);
      } else if (rest_max != 0) {
        const std::string tail = repeat("\",\" ws " + item + " ws", std::max<int64_t>(0, rest_min - 1),
                                        rest_max < 0 ? -1 : rest_max - 1);
        const std::string some = item + " ws " + tail;
        body += rest_min > 0 ? " " + some : " ( " + some + " )?";
      }
    }
    return add_rule(name, body + " \"]\"");
  }

  int depth_ = 0;  // schemas being compiled, nested
  const Json& root_;
  std::string prefix_;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> refs_;
};

}  // namespace

std::string gbnf_literal(std::string_view text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7F) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Result<std::string> json_schema_gbnf(const nlohmann::ordered_json& schema) {
  BRISK_ASSIGN(rules, SchemaCompiler(schema, "s").compile("root"));
  return rules + kPrimitives;
}

Result<std::string> json_schema_rules(const nlohmann::ordered_json& schema, const std::string& name) {
  return SchemaCompiler(schema, name).compile(name);
}

std::string json_primitives_gbnf() { return kPrimitives; }

std::string json_object_gbnf() { return std::string("root ::= json-object\n") + kPrimitives; }

}  // namespace brisk::grammar
