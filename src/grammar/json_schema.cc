#include "grammar/json_schema.h"

#include <cctype>
#include <map>
#include <set>

namespace brisk::grammar {

namespace {

using Json = nlohmann::ordered_json;

// Larger counts would unroll into that many grammar rules; refused rather than loosened.
constexpr int64_t kMaxCount = 1024;

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
json-date ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] )
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
                                          "format"};
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
    if (s.contains("const")) return gbnf_literal(s["const"].dump());
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty()) return fail(where, "'enum' must be a non-empty array");
      std::string alts;
      for (const Json& v : s["enum"]) alts += (alts.empty() ? "" : " | ") + gbnf_literal(v.dump());
      return add_rule(name, alts);
    }
    for (const char* key : {"anyOf", "oneOf"})
      if (s.contains(key)) return alternatives(s[key], name, where + "/" + key);
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
    if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties"))
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
    const Json* node = &root_;
    if (path != "#") {
      if (path.rfind("#/", 0) != 0) return fail(where, "'$ref' " + path + " is not supported (only refs into this schema, #/...)");
      size_t start = 2;
      while (start <= path.size()) {
        const size_t end = std::min(path.find('/', start), path.size());
        std::string part = path.substr(start, end - start);
        for (size_t p; (p = part.find("~1")) != std::string::npos;) part.replace(p, 2, "/");
        for (size_t p; (p = part.find("~0")) != std::string::npos;) part.replace(p, 2, "~");
        if (!node->is_object() || !node->contains(part)) return fail(where, "'$ref' " + path + " points nowhere");
        node = &(*node)[part];
        start = end + 1;
      }
    }
    const std::string rule = add_rule("ref-" + path.substr(path.rfind('/') + 1), "");
    refs_[path] = rule;
    BRISK_ASSIGN(expr, visit(*node, rule + "-body", path));
    rules_[rule] = expr;
    return rule;
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
    std::string extra;  // the additional members' rule, or empty when none are written
    if (s.contains("additionalProperties") && !(s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>())) {
      BRISK_ASSIGN(value, visit(s["additionalProperties"], name + "-extra", where + "/additionalProperties"));
      extra = add_rule(name + "-extra", "json-string ws \":\" ws " + value + " ws");
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
