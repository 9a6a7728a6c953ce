// JSON Schema -> GBNF (grammar.h): the grammar of the JSON texts a schema accepts, for
// response_format json_schema and for tool-call arguments.
//
// Supported: type (one or a list), enum, const (with type and string lengths beside them),
// anyOf (as alternatives), oneOf (as alternatives, only when no two branches can match one value:
// told apart by type, by listed values, or by a required const/enum property), allOf of one
// schema, $ref into #/$defs or #/definitions (recursion allowed), properties (in the schema's
// order) with required, additionalProperties (never under a declared name) and propertyNames
// (type string, enum, const, lengths), items, prefixItems, minItems / maxItems, minLength /
// maxLength, format date / time / date-time / uuid (dates that exist: month lengths, leap years,
// no year 0000), and annotations (title, description, default, examples, ...) which do not
// constrain. Any other keyword, and any keyword beside $ref / anyOf / oneOf / allOf, is refused
// with an error naming it and where it sits: a schema brisk cannot enforce is never silently
// weakened.
//
// Choices that keep every output finite and valid: whitespace between tokens is at most one space
// (as Outlines' default: a small model given newlines and indents spends its tokens on them, and
// max_tokens then cuts the JSON); integers have at most 16 digits, fractions 16, exponents 2;
// \u escapes exclude surrogates, so each escape is exactly one character (lengths count right).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace brisk::grammar {

// The GBNF of the values `schema` accepts, its start rule `root`.
Result<std::string> json_schema_gbnf(const nlohmann::ordered_json& schema);

// Rules for the values `schema` accepts, starting at rule `name`, their helpers named `name-...`,
// for embedding in a larger grammar (tool calls) that also includes json_primitives_gbnf() once.
Result<std::string> json_schema_rules(const nlohmann::ordered_json& schema, const std::string& name);
std::string json_primitives_gbnf();

// The GBNF of any JSON object (response_format json_object).
std::string json_object_gbnf();

// A GBNF string literal spelling `text` exactly.
std::string gbnf_literal(std::string_view text);

}  // namespace brisk::grammar
