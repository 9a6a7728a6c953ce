#include "serve/request_fields.h"

#include <string>

namespace brisk::serve {

namespace {

// Inert values of fields brisk does not implement yet (issue 19 adds most of them).
bool absent(const Json& v, const Json&) { return v.is_null(); }
bool null_or_false(const Json& v, const Json&) { return v.is_null() || v == false; }
bool null_or_empty(const Json& v, const Json&) { return v.is_null() || ((v.is_object() || v.is_array()) && v.empty()); }
bool null_or_empty_string(const Json& v, const Json&) { return v.is_null() || v == ""; }
// The deprecated function_call is inert only while no (deprecated) functions are given.
bool no_function_chosen(const Json& v, const Json& body) {
  const Json functions = body.value("functions", Json());
  const bool has_functions = functions.is_array() && !functions.empty();
  return v.is_null() || v == "none" || (v == "auto" && !has_functions);
}
bool text_modality(const Json& v, const Json&) { return v.is_null() || v == Json::array({"text"}); }
bool default_tier(const Json& v, const Json&) { return v.is_null() || v == "auto" || v == "default"; }

// Fields both generation endpoints honour (brisk's extras as vLLM names them included).
const FieldRule kSharedGeneration[] = {
    {"model", FieldUse::Honoured},          {"max_tokens", FieldUse::Honoured},
    {"n", FieldUse::Honoured},              {"stream", FieldUse::Honoured},
    {"stream_options", FieldUse::Honoured}, {"temperature", FieldUse::Honoured},
    {"top_p", FieldUse::Honoured},          {"presence_penalty", FieldUse::Honoured},
    {"frequency_penalty", FieldUse::Honoured}, {"seed", FieldUse::Honoured},
    {"stop", FieldUse::Honoured},           {"logprobs", FieldUse::Honoured},
    {"top_k", FieldUse::Honoured},          {"min_p", FieldUse::Honoured},
    {"repetition_penalty", FieldUse::Honoured}, {"ignore_eos", FieldUse::Honoured},
    {"logit_bias", FieldUse::Honoured},     {"user", FieldUse::NoEffect},
    {"response_format", FieldUse::Honoured}, {"grammar", FieldUse::Honoured},  // grammar: llama-server's GBNF
};

std::vector<FieldRule> with_shared(std::initializer_list<FieldRule> own) {
  std::vector<FieldRule> rules(std::begin(kSharedGeneration), std::end(kSharedGeneration));
  rules.insert(rules.end(), own);
  return rules;
}

// The fields of a chat message brisk renders; the others (audio, refusal, ...) are refused.
constexpr std::string_view kMessageFields[] = {"role", "content", "name", "tool_calls", "tool_call_id"};

}  // namespace

const std::vector<FieldRule>& field_rules(Endpoint endpoint) {
  static const std::vector<FieldRule> completions = with_shared({
      {"prompt", FieldUse::Honoured},
      {"echo", FieldUse::Honoured},
      {"best_of", FieldUse::Honoured},
      {"suffix", FieldUse::InertOnly, null_or_empty_string},
  });
  static const std::vector<FieldRule> chat = with_shared({
      {"messages", FieldUse::Honoured},
      {"max_completion_tokens", FieldUse::Honoured},
      {"top_logprobs", FieldUse::Honoured},
      {"chat_template", FieldUse::Honoured},          // vLLM's extras
      {"chat_template_kwargs", FieldUse::Honoured},
      {"add_generation_prompt", FieldUse::Honoured},
      {"prompt_cache_key", FieldUse::NoEffect},   // brisk caches prefixes by content anyway
      {"safety_identifier", FieldUse::NoEffect},
      {"metadata", FieldUse::NoEffect},
      {"store", FieldUse::InertOnly, null_or_false},
      {"service_tier", FieldUse::InertOnly, default_tier},
      {"tools", FieldUse::Honoured},
      {"tool_choice", FieldUse::Honoured},
      {"parallel_tool_calls", FieldUse::Honoured},
      {"functions", FieldUse::InertOnly, null_or_empty},
      {"function_call", FieldUse::InertOnly, no_function_chosen},
      {"modalities", FieldUse::InertOnly, text_modality},
      {"audio", FieldUse::InertOnly, absent},
      {"prediction", FieldUse::InertOnly, absent},
      {"reasoning_effort", FieldUse::InertOnly, absent},
      {"verbosity", FieldUse::InertOnly, absent},
      {"web_search_options", FieldUse::InertOnly, absent},
  });
  static const std::vector<FieldRule> embeddings = {
      {"input", FieldUse::Honoured},           {"model", FieldUse::Honoured},
      {"encoding_format", FieldUse::Honoured}, {"dimensions", FieldUse::Honoured},
      {"user", FieldUse::NoEffect},
  };
  // vLLM's /tokenize and /detokenize.
  static const std::vector<FieldRule> tokenize = {
      {"model", FieldUse::Honoured},              {"prompt", FieldUse::Honoured},
      {"messages", FieldUse::Honoured},           {"add_special_tokens", FieldUse::Honoured},
      {"add_generation_prompt", FieldUse::Honoured}, {"chat_template", FieldUse::Honoured},
      {"chat_template_kwargs", FieldUse::Honoured},
  };
  static const std::vector<FieldRule> detokenize = {{"model", FieldUse::Honoured}, {"tokens", FieldUse::Honoured}};
  switch (endpoint) {
    case Endpoint::Completions: return completions;
    case Endpoint::ChatCompletions: return chat;
    case Endpoint::Embeddings: return embeddings;
    case Endpoint::Tokenize: return tokenize;
    case Endpoint::Detokenize: break;
  }
  return detokenize;
}

std::optional<ApiError> check_request_fields(const Json& body, Endpoint endpoint) {
  const std::vector<FieldRule>& rules = field_rules(endpoint);
  for (const auto& [name, value] : body.items()) {
    const FieldRule* rule = nullptr;
    for (const FieldRule& r : rules)
      if (r.name == name) rule = &r;
    if (!rule) return invalid_field(name, "unknown field '" + name + "': brisk does not implement it");
    if (rule->use == FieldUse::InertOnly && !rule->inert(value, body))
      return invalid_field(name, "'" + name + "' is not supported by brisk yet (it would be ignored, so it is refused)");
  }
  if (endpoint != Endpoint::ChatCompletions && endpoint != Endpoint::Tokenize) return std::nullopt;
  const auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array()) return std::nullopt;  // the parser says why
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& message = (*messages)[i];
    if (!message.is_object()) continue;
    for (const auto& [name, value] : message.items()) {
      bool known = false;
      for (std::string_view field : kMessageFields) known = known || field == name;
      if (!known && !value.is_null())
        return invalid_field("messages[" + std::to_string(i) + "]." + name,
                             "message field '" + name + "' is not supported by brisk (role, content, name, tool_calls, "
                             "tool_call_id are)");
    }
  }
  return std::nullopt;
}

}  // namespace brisk::serve
