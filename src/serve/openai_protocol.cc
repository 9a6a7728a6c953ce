#include "serve/openai_protocol.h"

#include "serve/structured_output.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include "tokenizer/utf8.h"

namespace brisk::serve {

Json error_json(const ApiError& error) {
  return {{"error",
           {{"message", error.message},
            {"type", error.type},
            {"param", error.param.empty() ? Json(nullptr) : Json(error.param)},
            {"code", error.code.empty() ? Json(nullptr) : Json(error.code)}}}};
}

namespace {

// Field readers: absent or null leaves the default; a wrong type or range is a 400 naming the field.
// They return an error message (empty: fine) so the callers read as a flat list of fields.
std::string read_number(const Json& body, const char* key, double lo, double hi, float& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_number()) return std::string("'") + key + "' must be a number";
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return std::string("'") + key + "' must be between " + Json(lo).dump() + " and " + Json(hi).dump();
  out = float(v);
  return "";
}

// Integers may arrive as 16 or 16.0 (JavaScript clients); 16.5 is an error.
std::string read_integer(const Json& body, const char* key, int64_t lo, int64_t hi, int64_t& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return "";
  const std::string range = std::string("'") + key + "' must be an integer between " +
                            std::to_string(lo) + " and " + std::to_string(hi);
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    if (v > uint64_t(hi) || (lo > 0 && v < uint64_t(lo))) return range;
    out = int64_t(v);
  } else if (it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    if (v < lo || v > hi) return range;
    out = v;
  } else if (it->is_number_float()) {
    const double v = it->get<double>();
    if (!std::isfinite(v) || v != std::floor(v) || v < double(lo) || v > double(hi)) return range;
    out = int64_t(v);
  } else {
    return range;
  }
  return "";
}

// chat_template (a string), chat_template_kwargs (an object), add_generation_prompt (a bool).
std::optional<std::pair<std::string, std::string>> read_render_options(const Json& body, ChatRenderOptions& out);

std::string read_model(const Json& body, std::string& out) {
  auto model = body.find("model");
  if (model == body.end() || model->is_null()) return "";
  if (!model->is_string()) return "'model' must be a string";
  out = model->get<std::string>();
  return "";
}

std::string read_bool(const Json& body, const char* key, bool& out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_boolean()) return std::string("'") + key + "' must be true or false";
  out = it->get<bool>();
  return "";
}

// logit_bias: {"token id": bias in [-100, 100]} (OpenAI's form; ids are checked against the
// vocabulary once the model is known).
std::string read_logit_bias(const Json& body, std::vector<std::pair<int32_t, float>>& out) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return "";
  const std::string shape = "'logit_bias' must map token ids (as strings) to numbers in [-100, 100]";
  if (!it->is_object() || it->size() > kMaxLogitBias)
    return shape + ", at most " + std::to_string(kMaxLogitBias) + " of them";
  for (const auto& [key, value] : it->items()) {
    int64_t id = -1;
    const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (error != std::errc() || end != key.data() + key.size() || id < 0 || id > std::numeric_limits<int32_t>::max())
      return shape + ": '" + key + "' is not a token id";
    if (!value.is_number() || !std::isfinite(value.get<double>()) || std::fabs(value.get<double>()) > 100)
      return shape + ": the bias of " + key + " is not";
    out.emplace_back(int32_t(id), value.get<float>());
  }
  return "";
}

// stop: a string or a list of strings; empty strings would stop at once, so they are dropped.
std::string read_stop(const Json& body, std::vector<std::string>& out) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return "";
  if (it->is_string()) {
    if (!it->get_ref<const std::string&>().empty()) out.push_back(it->get<std::string>());
    return "";
  }
  if (!it->is_array() || it->size() > 16) return "'stop' must be a string or a list of at most 16 strings";
  for (const Json& s : *it) {
    if (!s.is_string()) return "'stop' must be a string or a list of at most 16 strings";
    if (!s.get_ref<const std::string&>().empty()) out.push_back(s.get<std::string>());
  }
  return "";
}

struct FieldError {
  std::string param, message;
};

// Reads the fields both endpoints share; the first bad one wins.
std::optional<FieldError> read_shared(const Json& body, Endpoint endpoint, GenerationParams& p) {
  // OpenAI's defaults, not the CLI's.
  p.sampling.temperature = 1.0f;
  p.sampling.top_p = 1.0f;
  p.sampling.top_k = 0;
  p.sampling.min_p = 0.0f;
  p.sampling.repetition_penalty = 1.0f;
  p.sampling.seed = std::random_device{}();

  int64_t seed = -1;
  int64_t top_k = 0;
  std::string message;
  const int64_t int_max = std::numeric_limits<int64_t>::max();
#define BRISK_FIELD(param, call) \
  if (!(message = (call)).empty()) return FieldError{param, message}
  BRISK_FIELD("model", read_model(body, p.model));
  BRISK_FIELD("max_tokens", read_integer(body, "max_tokens", 0, int_max, p.max_tokens));
  if (endpoint == Endpoint::ChatCompletions)
    BRISK_FIELD("max_completion_tokens", read_integer(body, "max_completion_tokens", 1, int_max, p.max_tokens));
  BRISK_FIELD("n", read_integer(body, "n", 1, kMaxChoices, p.n));
  BRISK_FIELD("stream", read_bool(body, "stream", p.stream));
  BRISK_FIELD("temperature", read_number(body, "temperature", 0, 2, p.sampling.temperature));
  BRISK_FIELD("top_p", read_number(body, "top_p", 0, 1, p.sampling.top_p));
  BRISK_FIELD("top_k", read_integer(body, "top_k", -1, 1 << 30, top_k));
  BRISK_FIELD("min_p", read_number(body, "min_p", 0, 1, p.sampling.min_p));
  BRISK_FIELD("presence_penalty", read_number(body, "presence_penalty", -2, 2, p.sampling.presence_penalty));
  BRISK_FIELD("frequency_penalty", read_number(body, "frequency_penalty", -2, 2, p.sampling.frequency_penalty));
  BRISK_FIELD("repetition_penalty", read_number(body, "repetition_penalty", 0.01, 10, p.sampling.repetition_penalty));
  BRISK_FIELD("seed", read_integer(body, "seed", std::numeric_limits<int64_t>::min(), int_max, seed));
  BRISK_FIELD("stop", read_stop(body, p.stop));
  BRISK_FIELD("logit_bias", read_logit_bias(body, p.sampling.logit_bias));
  BRISK_FIELD("ignore_eos", read_bool(body, "ignore_eos", p.ignore_eos));
  if (endpoint == Endpoint::Completions) {
    BRISK_FIELD("echo", read_bool(body, "echo", p.echo));
    BRISK_FIELD("best_of", read_integer(body, "best_of", 1, kMaxChoices, p.best_of));
    if (p.best_of != 0 && p.best_of < p.n) return FieldError{"best_of", "'best_of' must be at least n"};
    if (p.best_of > p.n && p.stream)
      return FieldError{"best_of", "'best_of' above n cannot be streamed (the best are known only at the end)"};
    if (p.max_tokens == 0 && !p.echo)
      return FieldError{"max_tokens", "'max_tokens' must be at least 1 (0 only with echo, to score the prompt)"};
    int64_t logprobs = -1;
    BRISK_FIELD("logprobs", read_integer(body, "logprobs", 0, kMaxTopLogprobs, logprobs));
    p.top_logprobs = int32_t(logprobs);
  } else {
    if (p.max_tokens == 0) return FieldError{"max_tokens", "'max_tokens' must be at least 1"};
    bool logprobs = false;
    int64_t top = 0;
    BRISK_FIELD("logprobs", read_bool(body, "logprobs", logprobs));
    BRISK_FIELD("top_logprobs", read_integer(body, "top_logprobs", 0, kMaxTopLogprobs, top));
    if (!logprobs && body.contains("top_logprobs") && !body["top_logprobs"].is_null() && top > 0)
      return FieldError{"top_logprobs", "'top_logprobs' needs 'logprobs': true"};
    p.top_logprobs = logprobs ? int32_t(top) : -1;
  }
#undef BRISK_FIELD
  p.sampling.top_k = int32_t(std::max<int64_t>(top_k, 0));
  // "seed": null is no seed (a fresh random one), as OpenAI reads it; it was a fixed seed of -1.
  if (const auto it = body.find("seed"); it != body.end() && !it->is_null()) p.sampling.seed = uint64_t(seed);
  auto options = body.find("stream_options");
  if (options != body.end() && !options->is_null()) {
    if (!options->is_object()) return FieldError{"stream_options", "'stream_options' must be an object"};
    bool include_usage = false;
    if (!(message = read_bool(*options, "include_usage", include_usage)).empty())
      return FieldError{"stream_options.include_usage", message};
    p.include_usage = include_usage;
  }
  return std::nullopt;
}

// Request JSON nests at most this deep: values are walked recursively later (schemas compiled,
// tool arguments dumped), and no OpenAI request needs more.
constexpr int kMaxRequestDepth = 128;

ApiResult<Json> parse_object(std::string_view body) {
  Json json;
  struct TooDeep {};
  try {
    json = Json::parse(body.begin(), body.end(), [](int depth, Json::parse_event_t, Json&) {
      if (depth > kMaxRequestDepth) throw TooDeep{};
      return true;
    });
  } catch (const TooDeep&) {
    return invalid_field("", "the request body nests deeper than " + std::to_string(kMaxRequestDepth) + " levels");
  } catch (const Json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 9: syntax error while
    // parsing value - invalid string: ill-formed UTF-8 byte; last read: ..." -> the reason only
    // (the bytes last read may be invalid UTF-8 themselves).
    std::string reason = e.what();
    if (const size_t dash = reason.find(" - "); dash != std::string::npos) reason = reason.substr(dash + 3);
    if (const size_t last = reason.find("; last read"); last != std::string::npos) reason.resize(last);
    return invalid_field("", "the request body is not valid JSON (at byte " + std::to_string(e.byte) + ": " +
                                 utf8::repair(reason) + ")");
  } catch (const Json::exception& e) {  // out_of_range: a number beyond double ("1e999")
    std::string reason = e.what();
    if (const size_t bracket = reason.find("] "); bracket != std::string::npos) reason = reason.substr(bracket + 2);
    return invalid_field("", "the request body is not valid JSON (" + utf8::repair(reason) + ")");
  }
  if (!json.is_object()) return invalid_field("", "the request body must be a JSON object");
  return json;
}

// Token ids in a prompt: integers in int32 range (the vocabulary check comes after parsing).
bool read_ids(const Json& array, std::vector<int32_t>& out) {
  for (const Json& v : array) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > std::numeric_limits<int32_t>::max())
      return false;
    out.push_back(int32_t(v.get<int64_t>()));
  }
  return true;
}

// `field` ("prompt", or embeddings' "input"): a string, a list of strings, a list of token ids or a
// list of lists of token ids, none empty.
std::optional<FieldError> read_prompts(const Json& body, const std::string& field, std::vector<PromptInput>& prompts) {
  const std::string shape =
      "'" + field + "' must be a string, a list of strings, a list of token ids or a list of lists of token ids";
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return FieldError{field, "'" + field + "' is required"};
  const Json& p = *it;
  if (p.is_string()) {
    prompts.emplace_back(p.get<std::string>());
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    std::vector<int32_t> ids;
    if (!read_ids(p, ids)) return FieldError{field, shape};
    prompts.emplace_back(std::move(ids));
  } else if (p.is_array()) {
    for (const Json& item : p) {
      if (item.is_string()) {
        prompts.emplace_back(item.get<std::string>());
      } else if (item.is_array()) {
        std::vector<int32_t> ids;
        if (!read_ids(item, ids)) return FieldError{field, shape};
        prompts.emplace_back(std::move(ids));
      } else {
        return FieldError{field, shape};
      }
    }
  } else {
    return FieldError{field, shape};
  }
  if (prompts.empty()) return FieldError{field, "'" + field + "' is empty"};
  for (const PromptInput& one : prompts) {
    const bool empty = std::holds_alternative<std::string>(one) ? std::get<std::string>(one).empty()
                                                               : std::get<std::vector<int32_t>>(one).empty();
    if (empty) return FieldError{field, "'" + field + "' is empty"};
  }
  return std::nullopt;
}

// content: a string, null, or a list of parts of which only {"type": "text"} carry text for us.
std::optional<FieldError> read_content(const Json& message, std::string& out) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    out = it->get<std::string>();
    return std::nullopt;
  }
  if (!it->is_array()) return FieldError{"messages", "a message's 'content' must be a string or a list of parts"};
  for (const Json& part : *it) {
    if (!part.is_object() || part.value("type", Json()).is_string() == false)
      return FieldError{"messages", "each content part must be an object with a 'type'"};
    if (part["type"] != "text") return FieldError{"messages", "only text content parts are supported"};
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) return FieldError{"messages", "a text part needs a string 'text'"};
    out += text->get<std::string>();
  }
  return std::nullopt;
}

// An assistant message's tool_calls: arguments (OpenAI sends JSON text) become objects.
std::optional<FieldError> read_tool_call_history(const Json& calls, const std::string& where, ChatMessages& out) {
  if (!calls.is_array()) return FieldError{where, "'tool_calls' must be a list"};
  out = ChatMessages::array();
  for (size_t j = 0; j < calls.size(); ++j) {
    const std::string at = where + "[" + std::to_string(j) + "]";
    const Json& call = calls[j];
    if (!call.is_object() || !call.contains("function") || !call["function"].is_object() ||
        !call["function"].value("name", Json()).is_string())
      return FieldError{at, "a tool call must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}"};
    const Json& f = call["function"];
    ChatMessages arguments = ChatMessages::object();
    if (auto a = f.find("arguments"); a != f.end() && a->is_string()) {
      arguments = ChatMessages::parse(a->get<std::string>(), nullptr, false);
      if (!arguments.is_object()) return FieldError{at + ".function.arguments", "'arguments' must be a JSON object's text"};
    } else if (a != f.end() && a->is_object()) {
      arguments = ChatMessages(*a);
    } else if (a != f.end() && !a->is_null()) {
      return FieldError{at + ".function.arguments", "'arguments' must be a JSON object's text"};
    }
    ChatMessages normalized = {{"type", "function"}, {"function", {{"name", f["name"]}, {"arguments", arguments}}}};
    if (call.contains("id") && call["id"].is_string()) normalized["id"] = call["id"];
    out.push_back(std::move(normalized));
  }
  return std::nullopt;
}

std::optional<FieldError> read_messages(const Json& body, ChatMessages& out) {
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->empty())
    return FieldError{"messages", "'messages' must be a non-empty list of {role, content} objects"};
  out = ChatMessages::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& m = (*messages)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || m["role"].get_ref<const std::string&>().empty())
      return FieldError{"messages", "each message must be an object with a string 'role'"};
    std::string content;
    if (auto bad = read_content(m, content)) return bad;
    ChatMessages message = {{"role", m["role"]}, {"content", content}};
    for (const char* text_field : {"name", "tool_call_id"})
      if (auto v = m.find(text_field); v != m.end() && !v->is_null()) {
        if (!v->is_string()) return FieldError{where + "." + text_field, std::string("'") + text_field + "' must be a string"};
        message[text_field] = *v;
      }
    if (auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      if (message["role"] != "assistant") return FieldError{where + ".tool_calls", "only assistant messages carry tool_calls"};
      ChatMessages normalized;
      if (auto bad = read_tool_call_history(*calls, where + ".tool_calls", normalized)) return bad;
      message["tool_calls"] = std::move(normalized);
    }
    out.push_back(std::move(message));
  }
  return std::nullopt;
}

// The fields that need the body's key order (schemas compile properties in the order written).
std::optional<ApiError> read_ordered_fields(std::string_view text, const Json& body, Endpoint endpoint,
                                            GenerationParams& p) {
  static const char* kOrdered[] = {"response_format", "grammar", "tools", "tool_choice", "parallel_tool_calls"};
  bool any = false;
  for (const char* key : kOrdered) any = any || (body.contains(key) && !body[key].is_null());
  if (!any) return std::nullopt;
  // A second parse, only for requests that have these fields: the first one sorted the keys. The
  // text already parsed and passed the depth limit.
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(text, nullptr, false);
  if (auto bad = read_structured_output(ordered, p.grammar)) return bad;
  if (endpoint == Endpoint::ChatCompletions) {
    if (auto bad = read_tool_calling(ordered, p.tools)) return bad;
    if (p.tools.forced() && !p.grammar.empty())
      return invalid_field("tool_choice", "a required or named tool_choice constrains the output itself; it cannot be "
                                          "combined with response_format or grammar");
  }
  if (p.ignore_eos && (!p.grammar.empty() || p.tools.forced()))
    return invalid_field("ignore_eos", "'ignore_eos' cannot be combined with a constrained output (it ends where the grammar does)");
  return std::nullopt;
}

std::optional<std::pair<std::string, std::string>> read_render_options(const Json& body, ChatRenderOptions& out) {
  if (auto t = body.find("chat_template"); t != body.end() && !t->is_null()) {
    if (!t->is_string()) return std::pair<std::string, std::string>{"chat_template", "'chat_template' must be a string"};
    out.chat_template = t->get<std::string>();
  }
  if (auto k = body.find("chat_template_kwargs"); k != body.end() && !k->is_null()) {
    if (!k->is_object())
      return std::pair<std::string, std::string>{"chat_template_kwargs", "'chat_template_kwargs' must be an object"};
    for (const char* reserved : {"messages", "add_generation_prompt"})
      if (k->contains(reserved))
        return std::pair<std::string, std::string>{"chat_template_kwargs",
                                                   std::string("'") + reserved + "' has its own field; it cannot be a template kwarg"};
    out.chat_template_kwargs = *k;
  }
  if (std::string message = read_bool(body, "add_generation_prompt", out.add_generation_prompt); !message.empty())
    return std::pair<std::string, std::string>{"add_generation_prompt", message};
  return std::nullopt;
}

}  // namespace

ApiResult<TokenizeBody> parse_tokenize_body(std::string_view text) {
  auto json = parse_object(text);
  if (!json) return json.error();
  const Json& j = json.value();
  if (auto refused = check_request_fields(j, Endpoint::Tokenize)) return *refused;
  TokenizeBody body;
  std::string message;
  if (!(message = read_model(j, body.model)).empty()) return invalid_field("model", message);
  if (!(message = read_bool(j, "add_special_tokens", body.add_special_tokens)).empty())
    return invalid_field("add_special_tokens", message);
  if (auto bad = read_render_options(j, body.render)) return invalid_field(bad->first, bad->second);
  const bool has_prompt = j.contains("prompt") && !j["prompt"].is_null();
  if (has_prompt == (j.contains("messages") && !j["messages"].is_null()))
    return invalid_field("prompt", "give either 'prompt' (a string) or 'messages'");
  if (has_prompt) {
    if (!j["prompt"].is_string()) return invalid_field("prompt", "'prompt' must be a string");
    body.prompt = j["prompt"].get<std::string>();
  } else if (auto bad = read_messages(j, body.messages)) {
    return invalid_field(bad->param, bad->message);
  }
  return body;
}

ApiResult<DetokenizeBody> parse_detokenize_body(std::string_view text) {
  auto json = parse_object(text);
  if (!json) return json.error();
  const Json& j = json.value();
  if (auto refused = check_request_fields(j, Endpoint::Detokenize)) return *refused;
  DetokenizeBody body;
  if (std::string message = read_model(j, body.model); !message.empty()) return invalid_field("model", message);
  auto tokens = j.find("tokens");
  if (tokens == j.end() || !tokens->is_array() || !read_ids(*tokens, body.tokens))
    return invalid_field("tokens", "'tokens' must be a list of token ids");
  return body;
}

ApiResult<CompletionBody> parse_completion_body(std::string_view text) {
  auto json = parse_object(text);
  if (!json) return json.error();
  if (auto refused = check_request_fields(json.value(), Endpoint::Completions)) return *refused;
  CompletionBody body;
  if (auto bad = read_shared(json.value(), Endpoint::Completions, body.params)) return invalid_field(bad->param, bad->message);
  if (auto bad = read_prompts(json.value(), "prompt", body.prompts)) return invalid_field(bad->param, bad->message);
  if (auto bad = read_ordered_fields(text, json.value(), Endpoint::Completions, body.params)) return *bad;
  if (int64_t(body.prompts.size()) * body.params.candidates() > kMaxChoices)
    return invalid_field(body.params.best_of > body.params.n ? "best_of" : "n",
                         "prompts x max(n, best_of) must be at most " + std::to_string(kMaxChoices));
  return body;
}

ApiResult<EmbeddingsBody> parse_embeddings_body(std::string_view text) {
  auto json = parse_object(text);
  if (!json) return json.error();
  const Json& j = json.value();
  if (auto refused = check_request_fields(j, Endpoint::Embeddings)) return *refused;
  EmbeddingsBody body;
  if (std::string message = read_model(j, body.model); !message.empty()) return invalid_field("model", message);
  if (auto f = j.find("encoding_format"); f != j.end() && !f->is_null()) {
    if (!f->is_string() || (*f != "float" && *f != "base64"))
      return invalid_field("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    body.base64 = *f == "base64";
  }
  if (auto d = j.find("dimensions"); d != j.end() && !d->is_null()) {
    if (!d->is_number_integer() || d->get<int64_t>() <= 0)
      return invalid_field("dimensions", "'dimensions' must be a positive integer");
    body.dimensions = d->get<int64_t>();
  }
  if (auto bad = read_prompts(j, "input", body.inputs)) return invalid_field(bad->param, bad->message);
  if (int64_t(body.inputs.size()) > kMaxEmbeddingInputs)
    return invalid_field("input", "at most " + std::to_string(kMaxEmbeddingInputs) + " inputs per request");
  return body;
}

ApiResult<ChatBody> parse_chat_body(std::string_view text) {
  auto json = parse_object(text);
  if (!json) return json.error();
  if (auto refused = check_request_fields(json.value(), Endpoint::ChatCompletions)) return *refused;
  ChatBody body;
  if (auto bad = read_shared(json.value(), Endpoint::ChatCompletions, body.params)) return invalid_field(bad->param, bad->message);
  if (auto bad = read_messages(json.value(), body.messages)) return invalid_field(bad->param, bad->message);
  if (auto bad = read_render_options(json.value(), body.render)) return invalid_field(bad->first, bad->second);
  if (auto bad = read_ordered_fields(text, json.value(), Endpoint::ChatCompletions, body.params)) return *bad;
  return body;
}

ApiResult<CompletionRequest> make_completion_request(const GenerationParams& params, Endpoint endpoint,
                                                     std::vector<int32_t> prompt, int64_t context,
                                                     int64_t vocab_size) {
  const char* prompt_field = endpoint == Endpoint::Completions ? "prompt" : "messages";
  if (prompt.empty()) return invalid_field(prompt_field, "the prompt is empty (and the tokenizer adds no BOS token)");
  for (int32_t id : prompt)
    if (id < 0 || id >= vocab_size)
      return invalid_field(prompt_field, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                             std::to_string(vocab_size) + " tokens)");
  for (const auto& [id, bias] : params.sampling.logit_bias)
    if (id >= vocab_size)
      return invalid_field("logit_bias", "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                             std::to_string(vocab_size) + " tokens)");
  const int64_t prompt_tokens = int64_t(prompt.size());
  ApiError too_long = invalid_field(prompt_field, "");
  too_long.code = "context_length_exceeded";
  if (prompt_tokens >= context) {
    too_long.message = "the prompt has " + std::to_string(prompt_tokens) + " tokens, but the context holds " +
                       std::to_string(context) + " (prompt and completion together)";
    return too_long;
  }
  const int64_t room = context - prompt_tokens;
  int64_t max_tokens = params.max_tokens;
  if (max_tokens < 0) {
    max_tokens = endpoint == Endpoint::Completions ? std::min<int64_t>(16, room) : room;
  } else if (max_tokens > room) {
    too_long.param = "max_tokens";
    too_long.message = "max_tokens is " + std::to_string(max_tokens) + " but the context holds " +
                       std::to_string(context) + " tokens and the prompt takes " + std::to_string(prompt_tokens) +
                       "; at most " + std::to_string(room) + " can be generated";
    return too_long;
  }
  CompletionRequest request;
  request.prompt = std::move(prompt);
  request.max_new_tokens = max_tokens;
  request.sampling = params.sampling;
  request.stop = params.stop;
  request.stop_at_eos = !params.ignore_eos;
  request.top_logprobs = params.top_logprobs;
  // echo with logprobs scores the prompt; echo with max_tokens 0 and no logprobs still runs the
  // prompt once (its text is all the answer holds).
  if (params.echo && (params.top_logprobs >= 0 || max_tokens == 0)) request.prompt_logprobs = std::max(params.top_logprobs, 0);
  return request;
}

}  // namespace brisk::serve
