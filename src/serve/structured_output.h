// response_format (OpenAI) and grammar (llama-server's GBNF field): the grammar a request's output
// must match, as GBNF text for the engine's GrammarCache. Errors name the field and, for a schema,
// the keyword brisk cannot enforce.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "serve/api_error.h"

namespace brisk::serve {

// Sets `gbnf` (empty when the output is free text).
std::optional<ApiError> read_structured_output(const nlohmann::ordered_json& body, std::string& gbnf);

}  // namespace brisk::serve
