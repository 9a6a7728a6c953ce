// Every field an OpenAI request may carry, and what brisk does with it: a field brisk does not
// implement gets a 400 naming it, never a 200 that ignores it. One table per endpoint
// (request_fields.cc), checked before the body is read.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "serve/api_error.h"

namespace brisk::serve {

enum class Endpoint { Completions, ChatCompletions, Embeddings, Tokenize, Detokenize };

enum class FieldUse {
  Honoured,    // read and applied
  NoEffect,    // by OpenAI's definition it does not change the output (user, prompt_cache_key)
  InertOnly,   // not implemented: accepted only at a value that asks for nothing (null, false, {})
};

struct FieldRule {
  std::string_view name;
  FieldUse use;
  // InertOnly: whether `value` (in `body`) asks for nothing brisk would ignore.
  bool (*inert)(const Json& value, const Json& body) = nullptr;
};

const std::vector<FieldRule>& field_rules(Endpoint endpoint);

// The first field of `body` (an object) that is unknown or asks for what brisk does not do, as a
// 400 naming it; nothing when every field is honoured. Chat messages' own fields are checked too.
std::optional<ApiError> check_request_fields(const Json& body, Endpoint endpoint);

}  // namespace brisk::serve
