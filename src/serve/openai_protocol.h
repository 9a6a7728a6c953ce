// OpenAI request bodies -> checked generation parameters -> scheduler requests. Parsing never
// throws and never trusts the body: every field is type-checked, a field brisk does not implement
// is refused (request_fields.h), and a bad one yields a 400 naming it (param).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "runtime/scheduler.h"
#include "serve/api_error.h"
#include "serve/chat_template.h"
#include "serve/request_fields.h"
#include "serve/tool_calls.h"

namespace brisk::serve {


// The fields both endpoints share, with OpenAI's defaults (temperature 1, top_p 1; our extras
// top_k and min_p off).
struct GenerationParams {
  std::string model;        // empty: not given (then the served model)
  int64_t max_tokens = -1;  // -1: not given (completions: 16; chat: the rest of the context)
  int64_t n = 1;            // choices per prompt
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool ignore_eos = false;      // extra (as vLLM): keep going past EOS (load generators use it)
  int32_t top_logprobs = -1;    // -1: no logprobs; otherwise the chosen token's plus that many
  bool echo = false;            // completions: the prompt (and its logprobs) before the completion
  int64_t best_of = 0;          // completions: candidates per prompt, the n most likely returned; 0: n
  // GBNF the output must match (response_format, grammar, or a forced tool call); empty: free text.
  std::string grammar;
  ToolCalling tools;            // chat: tools for the template, and how calls are chosen and parsed

  int64_t candidates() const { return std::max(n, best_of); }
};

// A prompt as text or as token ids (the completions endpoint accepts both).
using PromptInput = std::variant<std::string, std::vector<int32_t>>;

struct CompletionBody {
  GenerationParams params;
  std::vector<PromptInput> prompts;  // one choice group per prompt
};

struct EmbeddingsBody {
  std::string model;                // empty: not given
  std::vector<PromptInput> inputs;  // texts or token ids, none empty
  bool base64 = false;              // encoding_format "base64" (little-endian float32)
  int64_t dimensions = 0;           // 0: not given; otherwise must equal the model's width
};
constexpr int64_t kMaxEmbeddingInputs = 2048;  // OpenAI's limit per request

// How chat messages become a prompt (vLLM's extra fields, on chat and /tokenize): a template for
// this request instead of the model's, variables for it, and whether the assistant's turn opens.
struct ChatRenderOptions {
  std::optional<std::string> chat_template;
  Json chat_template_kwargs = Json::object();
  bool add_generation_prompt = true;
};

// Chat messages as the template receives them: role, content (text), and where given name,
// tool_calls (arguments as objects, as Hugging Face templates expect) and tool_call_id.
using ChatMessages = nlohmann::ordered_json;

struct ChatBody {
  GenerationParams params;
  ChatMessages messages;
  ChatRenderOptions render;
};

// POST /tokenize (vLLM's shape): a prompt, or chat messages rendered by the template.
struct TokenizeBody {
  std::string model;
  std::optional<std::string> prompt;  // else messages
  ChatMessages messages;
  bool add_special_tokens = true;  // prompt: BOS/EOS as the tokenizer adds them
  ChatRenderOptions render;        // messages
};

// POST /detokenize: token ids back to text.
struct DetokenizeBody {
  std::string model;
  std::vector<int32_t> tokens;
};

// Limits that keep one request from taking the server down (n x prompts sequences).
constexpr int64_t kMaxChoices = 128;
constexpr int32_t kMaxTopLogprobs = 20;
// logit_bias entries per request: each is read on every step (and copied to the device), and no
// real use biases more than a few hundred tokens.
constexpr size_t kMaxLogitBias = 4096;

ApiResult<CompletionBody> parse_completion_body(std::string_view body);
ApiResult<ChatBody> parse_chat_body(std::string_view body);
ApiResult<EmbeddingsBody> parse_embeddings_body(std::string_view body);
ApiResult<TokenizeBody> parse_tokenize_body(std::string_view body);
ApiResult<DetokenizeBody> parse_detokenize_body(std::string_view body);

// Checks a tokenized prompt against the context and builds the scheduler request.
// vocab_size: every id must index the embedding table.
ApiResult<CompletionRequest> make_completion_request(const GenerationParams& params, Endpoint endpoint,
                                                     std::vector<int32_t> prompt, int64_t context,
                                                     int64_t vocab_size);

}  // namespace brisk::serve
