#include "serve/openai_response.h"

#include "serve/random_id.h"

#include <chrono>

namespace brisk::serve {

const char* finish_reason_name(StopReason reason, bool called_tools) {
  switch (reason) {
    case StopReason::Eos:
    case StopReason::Grammar:
    case StopReason::StopString: return called_tools ? "tool_calls" : "stop";
    case StopReason::Length:
    case StopReason::Context:
    case StopReason::Cancelled: return "length";
  }
  return "stop";
}

Json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

std::string dump_json(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }

namespace {

Json bytes_json(const std::string& s) {
  Json out = Json::array();
  for (unsigned char c : s) out.push_back(int(c));
  return out;
}

}  // namespace

ResponseBuilder::ResponseBuilder(Endpoint endpoint, std::string model, const Tokenizer& tokenizer,
                                 const GenerationParams& params)
    : endpoint_(endpoint),
      model_(std::move(model)),
      tokenizer_(tokenizer),
      logprobs_(params.top_logprobs >= 0),
      echo_(params.echo),
      id_(random_id(endpoint == Endpoint::Completions ? "cmpl-" : "chatcmpl-", 16)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count()) {}

void ResponseBuilder::append(ChoiceState& choice, const StreamEvent& event) {
  choice.text += event.text;
  choice.ids.insert(choice.ids.end(), event.ids.begin(), event.ids.end());
  choice.logprobs.insert(choice.logprobs.end(), event.logprobs.begin(), event.logprobs.end());
  choice.top_logprobs.insert(choice.top_logprobs.end(), event.top_logprobs.begin(), event.top_logprobs.end());
  choice.prompt_logprobs.insert(choice.prompt_logprobs.end(), event.prompt_logprobs.begin(), event.prompt_logprobs.end());
  choice.prompt_top_logprobs.insert(choice.prompt_top_logprobs.end(), event.prompt_top_logprobs.begin(),
                                    event.prompt_top_logprobs.end());
  choice.prompt_tokens = event.prompt_tokens;
  choice.completion_tokens = event.completion_tokens;
  choice.speculated_tokens = event.speculated_tokens;
  choice.accepted_tokens = event.accepted_tokens;
  if (event.finished) {
    choice.finished = true;
    choice.reason = event.reason;
    choice.error = event.error;
  }
}

Json ResponseBuilder::logprobs_json(const std::vector<int32_t>& ids, const std::vector<float>& logprobs,
                                    const std::vector<std::vector<TokenLogprob>>& top, int32_t previous,
                                    size_t offset) const {
  // The scheduler sends logprobs per token when asked; guard against a short list anyway.
  const size_t count = std::min(ids.size(), logprobs.size());
  if (endpoint_ == Endpoint::Completions) {
    Json tokens = Json::array(), token_logprobs = Json::array(), tops = Json::array(), offsets = Json::array();
    for (size_t i = 0; i < count; ++i) {
      const std::string piece = tokenizer_.token_bytes(ids[i], previous);
      tokens.push_back(piece);
      token_logprobs.push_back(logprobs[i]);
      offsets.push_back(offset);
      Json alternatives = Json::object();
      if (i < top.size())
        for (const TokenLogprob& t : top[i]) alternatives[tokenizer_.token_bytes(t.id, previous)] = t.logprob;
      tops.push_back(std::move(alternatives));
      offset += piece.size();
      previous = ids[i];
    }
    return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", tops}, {"text_offset", offsets}};
  }
  Json content = Json::array();
  for (size_t i = 0; i < count; ++i) {
    const std::string piece = tokenizer_.token_bytes(ids[i], previous);
    Json alternatives = Json::array();
    if (i < top.size())
      for (const TokenLogprob& t : top[i]) {
        const std::string alt = tokenizer_.token_bytes(t.id, previous);
        alternatives.push_back({{"token", alt}, {"logprob", t.logprob}, {"bytes", bytes_json(alt)}});
      }
    content.push_back({{"token", piece}, {"logprob", logprobs[i]}, {"bytes", bytes_json(piece)},
                       {"top_logprobs", std::move(alternatives)}});
    previous = ids[i];
  }
  return {{"content", content}};
}

Json ResponseBuilder::prompt_logprobs_json(const ChoiceState& c) const {
  Json tokens = Json::array(), token_logprobs = Json::array(), tops = Json::array(), offsets = Json::array();
  int32_t previous = -1;
  size_t offset = 0;
  for (size_t i = 0; i < c.prompt_ids.size(); ++i) {
    const std::string piece = tokenizer_.token_bytes(c.prompt_ids[i], previous);
    tokens.push_back(piece);
    offsets.push_back(offset);
    // Prompt token i (i >= 1) has the (i-1)-th score; the first token is predicted by nothing.
    if (i == 0 || i - 1 >= c.prompt_logprobs.size()) {
      token_logprobs.push_back(nullptr);
      tops.push_back(nullptr);
    } else {
      token_logprobs.push_back(c.prompt_logprobs[i - 1]);
      Json alternatives = Json::object();
      if (i - 1 < c.prompt_top_logprobs.size())
        for (const TokenLogprob& t : c.prompt_top_logprobs[i - 1])
          alternatives[tokenizer_.token_bytes(t.id, previous)] = t.logprob;
      tops.push_back(std::move(alternatives));
    }
    offset += piece.size();
    previous = c.prompt_ids[i];
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

Json ResponseBuilder::echo_chunk(int64_t index, const ChoiceState& choice) const {
  Json chunk = chunk_envelope();
  chunk["choices"] = Json::array({{{"index", index},
                                   {"text", choice.prompt_text},
                                   {"logprobs", logprobs_ ? prompt_logprobs_json(choice) : Json(nullptr)},
                                   {"finish_reason", nullptr}}});
  return chunk;
}

Json ResponseBuilder::chunk_envelope() const {
  return {{"id", id_},
          {"object", endpoint_ == Endpoint::Completions ? "text_completion" : "chat.completion.chunk"},
          {"created", created_},
          {"model", model_}};
}

Json ResponseBuilder::role_chunk(int64_t index) const {
  Json chunk = chunk_envelope();
  chunk["choices"] = Json::array(
      {{{"index", index}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}}});
  return chunk;
}

Json ResponseBuilder::event_chunk(int64_t index, const StreamEvent& event, const ChoiceState& before) const {
  Json choice = {{"index", index}};
  if (endpoint_ == Endpoint::Completions)
    choice["text"] = event.text;
  else
    choice["delta"] = event.text.empty() && event.finished ? Json::object() : Json{{"content", event.text}};
  const int32_t previous = before.ids.empty() ? -1 : before.ids.back();
  const size_t offset = (echo_ ? before.prompt_text.size() : 0) + before.text.size();
  choice["logprobs"] = logprobs_ ? logprobs_json(event.ids, event.logprobs, event.top_logprobs, previous, offset)
                                 : Json(nullptr);
  choice["finish_reason"] =
      event.finished ? Json(finish_reason_name(event.reason, before.tool_calls > 0)) : Json(nullptr);
  Json chunk = chunk_envelope();
  chunk["choices"] = Json::array({std::move(choice)});
  return chunk;
}

std::vector<Json> ResponseBuilder::tool_call_chunks(int64_t index,
                                                    const std::vector<ToolCallParser::CallDelta>& deltas) const {
  std::vector<Json> chunks;
  for (const ToolCallParser::CallDelta& d : deltas) {
    Json delta = {{"index", d.index}, {"function", {{"arguments", d.arguments}}}};
    if (!d.id.empty()) {  // the call opens: OpenAI's first delta names it
      delta["id"] = d.id;
      delta["type"] = "function";
      delta["function"]["name"] = d.name;
    }
    Json chunk = chunk_envelope();
    chunk["choices"] = Json::array({{{"index", index},
                                     {"delta", {{"tool_calls", Json::array({std::move(delta)})}}},
                                     {"logprobs", nullptr},
                                     {"finish_reason", nullptr}}});
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

Json ResponseBuilder::usage_chunk(const Usage& usage) const {
  Json chunk = chunk_envelope();
  chunk["choices"] = Json::array();
  chunk["usage"] = usage_json(usage);
  return chunk;
}

Json ResponseBuilder::full_response(const std::vector<ChoiceState>& choices, const Usage& usage) const {
  Json out = {{"id", id_},
              {"object", endpoint_ == Endpoint::Completions ? "text_completion" : "chat.completion"},
              {"created", created_},
              {"model", model_}};
  Json list = Json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceState& c = choices[i];
    Json choice = {{"index", i}};
    std::vector<ToolCall> tool_calls;
    if (endpoint_ == Endpoint::Completions) {
      choice["text"] = echo_ ? c.prompt_text + c.text : c.text;
    } else if (c.tool_parser) {  // the whole output through the parser the stream uses
      ToolCallParser parser = *c.tool_parser;
      const ToolCallParser::Delta split = parser.feed(c.text, ToolCallParser::Piece::Last);
      ToolCallParser::assemble(split.calls, tool_calls);
      Json message = {{"role", "assistant"},
                      {"content", split.content.empty() && !tool_calls.empty() ? Json(nullptr) : Json(split.content)}};
      if (!tool_calls.empty()) {
        Json calls = Json::array();
        for (const ToolCall& call : tool_calls)
          calls.push_back({{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
        message["tool_calls"] = std::move(calls);
      }
      choice["message"] = std::move(message);
    } else {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    }
    choice["finish_reason"] = finish_reason_name(c.reason, !tool_calls.empty());
    if (!logprobs_) {
      choice["logprobs"] = nullptr;
    } else if (!echo_) {
      choice["logprobs"] = logprobs_json(c.ids, c.logprobs, c.top_logprobs, -1, 0);
    } else {  // the prompt's entries, then the completion's (offsets after the echoed text)
      Json merged = prompt_logprobs_json(c);
      const int32_t previous = c.prompt_ids.empty() ? -1 : c.prompt_ids.back();
      const Json generated = logprobs_json(c.ids, c.logprobs, c.top_logprobs, previous, c.prompt_text.size());
      for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
        for (const Json& v : generated[key]) merged[key].push_back(v);
      choice["logprobs"] = std::move(merged);
    }
    list.push_back(std::move(choice));
  }
  out["choices"] = std::move(list);
  out["usage"] = usage_json(usage);
  return out;
}

}  // namespace brisk::serve
