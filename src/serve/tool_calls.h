// Tool calling: the request's tools and tool_choice, the grammar that forces a call, and the
// parser that splits a model's output into content and tool calls, in the formats models are
// trained on (names as vLLM's --tool-call-parser):
//   hermes       <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>   (Qwen2/2.5, Hermes)
//   llama3_json  {"name": "f", "parameters": {...}}, optionally after <|python_tag|>  (Llama 3.1+)
//   mistral      [TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]          (Mistral v0.3+)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/api_error.h"

namespace brisk::serve {

enum class ToolCallFormat { Hermes, Llama3Json, Mistral };

// "hermes", "llama3_json", "mistral"; nullopt for anything else.
std::optional<ToolCallFormat> tool_call_format_named(std::string_view name);
const char* tool_call_format_name(ToolCallFormat format);
// The format a chat template writes tool calls in, from the markers it mentions; Hermes (the most
// common) when it names none.
ToolCallFormat detect_tool_call_format(std::string_view template_source);

enum class ToolChoice { None, Auto, Required, Named };

// A chat request's tools (OpenAI's fields tools, tool_choice, parallel_tool_calls).
struct ToolCalling {
  nlohmann::ordered_json tools = nullptr;  // [{type: function, function: {name, description, parameters}}], or null
  ToolChoice choice = ToolChoice::None;
  std::string named;                       // ToolChoice::Named: the function
  bool parallel = true;
  ToolCallFormat format = ToolCallFormat::Hermes;  // set by the server from its chat template

  // The output may hold tool calls to parse.
  bool active() const { return choice != ToolChoice::None; }
  // A call is required: the output is constrained to calls (forced_tool_call_grammar).
  bool forced() const { return choice == ToolChoice::Required || choice == ToolChoice::Named; }
};

// Reads tools / tool_choice / parallel_tool_calls (a field's error names it).
std::optional<ApiError> read_tool_calling(const nlohmann::ordered_json& body, ToolCalling& out);

// The GBNF that admits only calls of the chosen tool(s), with arguments valid under each tool's
// parameters schema, in `calling.format`. Errors name the tool's parameters field.
ApiResult<std::string> forced_tool_call_grammar(const ToolCalling& calling);

// Depth of JSON brackets across pieces of text (strings and escapes respected).
struct JsonBracketScan {
  int depth = 0;
  bool in_string = false, escaped = false;
  // Consumes text up to where depth returns to zero (returns one past it), or npos.
  size_t until_closed(std::string_view text);
};

struct ToolCall {
  std::string id;         // call_<24 hex>
  std::string name;
  std::string arguments;  // a JSON object's text, as the model wrote it
};

// Splits output text into content and calls as it streams: content is released as soon as it
// cannot be the start of a call marker; a call opens (id, name) once its head
// {"name": "...", "arguments": is complete, and its arguments stream as they are written, up to
// the object's closing brace. A call whose JSON is not of that shape is taken whole once it closes
// (arguments re-serialized), and text that is no call at all stays content, exactly as written.
class ToolCallParser {
 public:
  explicit ToolCallParser(const ToolCalling& calling);

  struct CallDelta {
    size_t index = 0;       // the call's position among the output's calls
    std::string id, name;   // set on a call's first delta only
    std::string arguments;  // the next piece of its arguments' text
  };
  struct Delta {
    std::string content;
    std::vector<CallDelta> calls;
  };
  // More text of the output; Last: it is the end, so whatever was held back is released too.
  enum class Piece : bool { More, Last };
  Delta feed(std::string_view text, Piece piece = Piece::More);
  Delta finish();  // the output ended: whatever is held back
  size_t calls_so_far() const { return calls_; }

  // Applies deltas to the calls they build.
  static void assemble(const std::vector<CallDelta>& deltas, std::vector<ToolCall>& calls);

 private:
  enum class Phase { Start, Content, Call, Done };
  enum class Part { Open, Head, Arguments, Tail, Whole, Close };
  void step(Delta& out, bool at_end);
  bool step_call(Delta& out, bool at_end);  // one part of the call region; false: wait for text
  void release(Delta& out, std::string text);
  std::string opener() const;

  ToolCallFormat format_;
  bool forced_;
  Phase phase_ = Phase::Start;
  Part part_ = Part::Open;
  JsonBracketScan scan_;
  std::string buffer_;      // text not yet released
  std::string whitespace_;  // trailing whitespace held back (dropped before a call)
  size_t calls_ = 0;
};

}  // namespace brisk::serve
