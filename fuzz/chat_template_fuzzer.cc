// Why: a chat template is a program shipped with the model (tokenizer_config.json), run by
// brisk's own Jinja subset for every chat request. Parsing and rendering must return a value or
// an error, within the render limits. A past bug: a 20,000-link `+` chain overflowed the stack
// (parse, render and free were recursive). The input is the template; the conversations are
// fixed: plain turns with the generation prompt, then OpenAI-style JSON with a tool schema, a tool
// call and a tool result.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "serve/chat_template.h"

namespace {

using OrderedJson = nlohmann::ordered_json;

// strftime_now()'s clock, fixed so a run is reproducible (2024-01-01 00:00 UTC).
constexpr std::time_t kFixedNow = 1704067200;
// The server's render limits but a shorter time limit: code runs ~20x slower under the sanitizers,
// and two renders must stay well inside libFuzzer's -timeout (fuzz/run_fuzzer.sh). The limit
// still has to stop every template, which is what is tested, whatever its value.
constexpr std::chrono::milliseconds kFuzzRenderTime{500};

OrderedJson plain_turns() {
  return OrderedJson::parse(R"([{"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello, caf\u00e9!"}, {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "{{ not a template }} <|eot_id|>"}])");
}

OrderedJson tool_conversation() {
  return OrderedJson::parse(R"([
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "id": "call_1",
      "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "{\"temperature\": 21.5}", "tool_call_id": "call_1"}])");
}

OrderedJson tool_schemas() {
  return OrderedJson::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Current weather.", "parameters": {"type": "object",
    "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const OrderedJson kPlainTurns = plain_turns();
  static const OrderedJson kToolConversation = tool_conversation();
  static const brisk::ChatTemplateInputs kPlainInputs{nullptr, OrderedJson::object(), kFixedNow};
  static const brisk::ChatTemplateInputs kToolInputs{tool_schemas(), OrderedJson::object(), kFixedNow};
  auto chat = brisk::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size), "<s>", "</s>");
  if (!chat.ok()) return 0;
  brisk::jinja::RenderLimits limits;
  limits.max_time = kFuzzRenderTime;
  chat.value().set_limits(limits);
  (void)chat.value().apply_json(kPlainTurns, brisk::GenerationPrompt::kAppend, kPlainInputs);
  (void)chat.value().apply_json(kToolConversation, brisk::GenerationPrompt::kOmit, kToolInputs);
  return 0;
}
