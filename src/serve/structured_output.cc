#include "serve/structured_output.h"

#include "grammar/grammar.h"
#include "grammar/json_schema.h"

namespace brisk::serve {

using OJson = nlohmann::ordered_json;

std::optional<ApiError> read_structured_output(const OJson& body, std::string& gbnf) {
  gbnf.clear();
  const auto format = body.find("response_format");
  const auto grammar = body.find("grammar");
  const bool has_format = format != body.end() && !format->is_null();
  const bool has_grammar = grammar != body.end() && !grammar->is_null();
  if (has_grammar) {
    if (!grammar->is_string()) return invalid_field("grammar", "'grammar' must be a GBNF grammar (a string)");
    if (has_format && format->value("type", OJson()) != "text")
      return invalid_field("grammar", "give either 'grammar' or a JSON 'response_format', not both");
    auto parsed = grammar::Grammar::parse(grammar->get<std::string>());
    if (!parsed) return invalid_field("grammar", parsed.error().message);
    gbnf = grammar->get<std::string>();
    return std::nullopt;
  }
  if (!has_format) return std::nullopt;
  const char* shape = "'response_format' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or "
                      "{\"type\": \"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": {...}}}";
  if (!format->is_object() || !format->value("type", OJson()).is_string()) return invalid_field("response_format", shape);
  const std::string type = (*format)["type"].get<std::string>();
  for (const auto& [key, value] : format->items())
    if (key != "type" && !(type == "json_schema" && key == "json_schema"))
      return invalid_field("response_format." + key, "unknown response_format field '" + key + "'");
  if (type == "text") return std::nullopt;
  if (type == "json_object") {
    gbnf = grammar::json_object_gbnf();
    return std::nullopt;
  }
  if (type != "json_schema") return invalid_field("response_format.type", shape);
  const auto spec = format->find("json_schema");
  if (spec == format->end() || !spec->is_object())
    return invalid_field("response_format.json_schema", "'json_schema' must be {\"name\": ..., \"schema\": {...}}");
  for (const auto& [key, value] : spec->items())
    if (key != "name" && key != "description" && key != "schema" && key != "strict")
      return invalid_field("response_format.json_schema." + key, "unknown json_schema field '" + key + "'");
  if (!spec->contains("name") || !(*spec)["name"].is_string())
    return invalid_field("response_format.json_schema.name", "'name' (a string) is required");
  const OJson schema = spec->value("schema", OJson::object());
  auto compiled = grammar::json_schema_gbnf(schema);
  if (!compiled) return invalid_field("response_format.json_schema.schema", compiled.error().message);
  gbnf = std::move(compiled).value();
  return std::nullopt;
}

}  // namespace brisk::serve
