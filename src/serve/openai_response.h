// Scheduler events -> OpenAI response JSON: whole responses (stream: false) and SSE chunks
// (stream: true) for both endpoints, with usage and logprobs in OpenAI's two shapes
// (completions: tokens/token_logprobs/top_logprobs; chat: content[{token, logprob, bytes}]).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/json_file.h"
#include "runtime/scheduler.h"
#include "serve/openai_protocol.h"
#include "tokenizer/tokenizer.h"

namespace brisk::serve {

// "tool_calls" instead of "stop" when the output held tool calls.
const char* finish_reason_name(StopReason reason, bool called_tools = false);

// One choice as its events arrive.
struct ChoiceState {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top_logprobs;
  bool finished = false;
  StopReason reason = StopReason::Length;
  std::string error;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t speculated_tokens = 0, accepted_tokens = 0;  // speculation (serve --lookup)
  // echo: the prompt as echoed (the text given, or the ids' text) and its token scores (the first
  // token has none); `echoed`: a stream has sent it.
  std::string prompt_text;
  std::vector<int32_t> prompt_ids;
  std::vector<float> prompt_logprobs;
  std::vector<std::vector<TokenLogprob>> prompt_top_logprobs;
  bool echoed = false;
  // Chat with tools: the output is split into content and calls as it streams.
  std::optional<ToolCallParser> tool_parser;
  size_t tool_calls = 0;  // calls opened so far
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

class ResponseBuilder {
 public:
  // Logprobs when the request asked for them (top_logprobs >= 0); the prompt first when it asked
  // for echo.
  ResponseBuilder(Endpoint endpoint, std::string model, const Tokenizer& tokenizer, const GenerationParams& params);

  const std::string& id() const { return id_; }

  // Streaming. The chat endpoint opens each choice with {"role": "assistant"}.
  Json role_chunk(int64_t index) const;
  Json event_chunk(int64_t index, const StreamEvent& event, const ChoiceState& before) const;
  Json usage_chunk(const Usage& usage) const;
  // echo, streaming: the prompt (and its logprobs) as the choice's first text.
  Json echo_chunk(int64_t index, const ChoiceState& choice) const;
  // Tool calls, streamed: one chunk per delta (a call's first carries its id and name).
  std::vector<Json> tool_call_chunks(int64_t index, const std::vector<ToolCallParser::CallDelta>& deltas) const;

  // stream: false. choices are in index order.
  Json full_response(const std::vector<ChoiceState>& choices, const Usage& usage) const;

  static void append(ChoiceState& choice, const StreamEvent& event);

 private:
  Json chunk_envelope() const;
  // Logprobs for tokens ids[0..) that follow `previous` (-1 at the start); text_offset starts at
  // `offset` bytes into the completion.
  Json logprobs_json(const std::vector<int32_t>& ids, const std::vector<float>& logprobs,
                     const std::vector<std::vector<TokenLogprob>>& top, int32_t previous, size_t offset) const;

  // The prompt's logprobs (completions shape: its first token's entries null).
  Json prompt_logprobs_json(const ChoiceState& choice) const;

  Endpoint endpoint_;
  std::string model_;
  const Tokenizer& tokenizer_;
  bool logprobs_;
  bool echo_;
  std::string id_;
  int64_t created_;
};

Json usage_json(const Usage& usage);

// JSON text for the wire: invalid UTF-8 in generated text (a model can emit any bytes) becomes
// U+FFFD instead of throwing.
std::string dump_json(const Json& json);

}  // namespace brisk::serve
