#include "serve/tool_calls.h"

#include <random>

#include "grammar/json_schema.h"

namespace brisk::serve {

namespace {

using OJson = nlohmann::ordered_json;

constexpr std::string_view kHermesOpen = "<tool_call>", kHermesClose = "</tool_call>";
constexpr std::string_view kMistralMarker = "[TOOL_CALLS]";
constexpr std::string_view kPythonTag = "<|python_tag|>";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// The longest suffix of `text` that is a proper prefix of `marker`: text that may still become it.
size_t marker_prefix_at_end(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n)
    if (marker.substr(0, n) == text.substr(text.size() - n)) return n;
  return 0;
}

// Where the JSON object or array starting at text's first non-space byte ends (one past it), or
// npos while it is incomplete (strings and escapes respected).
size_t json_value_end(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false, started = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!started) {
      if (is_space(c)) continue;
      if (c != '{' && c != '[') return std::string_view::npos;
      started = true;
    }
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') ++depth;
    else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
  }
  return std::string_view::npos;
}

std::string call_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += hex[rng() % 16];
  return id;
}

// {"name": ..., "arguments" | "parameters": {...} or its JSON text} -> a call.
std::optional<ToolCall> call_from_json(const OJson& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  const OJson* args = j.contains("arguments") ? &j["arguments"] : j.contains("parameters") ? &j["parameters"] : nullptr;
  OJson object = OJson::object();
  if (args && args->is_string()) {
    object = OJson::parse(args->get<std::string>(), nullptr, false);
    if (!object.is_object()) return std::nullopt;
  } else if (args) {
    if (!args->is_object()) return std::nullopt;
    object = *args;
  }
  return ToolCall{call_id(), j["name"].get<std::string>(), object.dump()};
}

bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

}  // namespace

std::optional<ToolCallFormat> tool_call_format_named(std::string_view name) {
  if (name == "hermes") return ToolCallFormat::Hermes;
  if (name == "llama3_json") return ToolCallFormat::Llama3Json;
  if (name == "mistral") return ToolCallFormat::Mistral;
  return std::nullopt;
}

const char* tool_call_format_name(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::Hermes: return "hermes";
    case ToolCallFormat::Llama3Json: return "llama3_json";
    case ToolCallFormat::Mistral: return "mistral";
  }
  return "hermes";
}

ToolCallFormat detect_tool_call_format(std::string_view source) {
  if (source.find(kMistralMarker) != std::string_view::npos) return ToolCallFormat::Mistral;
  if (source.find(kPythonTag) != std::string_view::npos || source.find("ipython") != std::string_view::npos)
    return ToolCallFormat::Llama3Json;
  return ToolCallFormat::Hermes;
}

std::optional<ApiError> read_tool_calling(const OJson& body, ToolCalling& out) {
  if (auto t = body.find("tools"); t != body.end() && !t->is_null()) {
    if (!t->is_array()) return invalid_field("tools", "'tools' must be a list of {type: \"function\", function: {...}}");
    for (size_t i = 0; i < t->size(); ++i) {
      const OJson& tool = (*t)[i];
      const std::string where = "tools[" + std::to_string(i) + "]";
      if (!tool.is_object() || tool.value("type", OJson()) != "function" || !tool.contains("function") ||
          !tool["function"].is_object())
        return invalid_field(where, "each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}} (brisk supports function tools)");
      const OJson& f = tool["function"];
      if (!f.contains("name") || !f["name"].is_string() || !valid_function_name(f["name"].get<std::string>()))
        return invalid_field(where + ".function.name", "a function name is 1-64 letters, digits, '_' or '-'");
      if (f.contains("parameters") && !f["parameters"].is_null() && !f["parameters"].is_object())
        return invalid_field(where + ".function.parameters", "'parameters' must be a JSON Schema object");
      for (const auto& [key, value] : f.items())
        if (key != "name" && key != "description" && key != "parameters" && key != "strict")
          return invalid_field(where + ".function." + key, "unknown function field '" + key + "'");
    }
    if (!t->empty()) out.tools = *t;
  }
  const bool has_tools = !out.tools.is_null();
  out.choice = has_tools ? ToolChoice::Auto : ToolChoice::None;
  if (auto c = body.find("tool_choice"); c != body.end() && !c->is_null()) {
    if (c->is_string()) {
      const std::string v = c->get<std::string>();
      if (v == "none") out.choice = ToolChoice::None;
      else if (v == "auto") out.choice = has_tools ? ToolChoice::Auto : ToolChoice::None;
      else if (v == "required") out.choice = ToolChoice::Required;
      else return invalid_field("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    } else if (c->is_object() && c->value("type", OJson()) == "function" && c->contains("function") &&
               (*c)["function"].is_object() && (*c)["function"].value("name", OJson()).is_string()) {
      out.choice = ToolChoice::Named;
      out.named = (*c)["function"]["name"].get<std::string>();
      bool known = false;
      if (has_tools)
        for (const OJson& tool : out.tools) known = known || tool["function"]["name"] == out.named;
      if (!known) return invalid_field("tool_choice", "tool_choice names '" + out.named + "', which is not among 'tools'");
    } else {
      return invalid_field("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    if (out.choice == ToolChoice::Required && !has_tools)
      return invalid_field("tool_choice", "tool_choice \"required\" needs a non-empty 'tools'");
  }
  if (auto p = body.find("parallel_tool_calls"); p != body.end() && !p->is_null()) {
    if (!p->is_boolean()) return invalid_field("parallel_tool_calls", "'parallel_tool_calls' must be true or false");
    out.parallel = p->get<bool>();
  }
  return std::nullopt;
}

ApiResult<std::string> forced_tool_call_grammar(const ToolCalling& calling) {
  std::string rules, names;
  for (size_t i = 0; i < calling.tools.size(); ++i) {
    const OJson& f = calling.tools[i]["function"];
    const std::string name = f["name"].get<std::string>();
    if (calling.choice == ToolChoice::Named && name != calling.named) continue;
    const std::string args = "tool-" + std::to_string(i) + "-args";
    if (f.contains("parameters") && f["parameters"].is_object()) {
      auto compiled = grammar::json_schema_rules(f["parameters"], args);
      if (!compiled)
        return invalid_field("tools[" + std::to_string(i) + "].function.parameters", compiled.error().message);
      rules += compiled.value();
    } else {
      rules += args + " ::= json-object\n";
    }
    const char* key = calling.format == ToolCallFormat::Llama3Json ? "parameters" : "arguments";
    const std::string head = OJson(name).dump() + ", \"" + key + "\": ";
    rules += "tool-" + std::to_string(i) + " ::= " + grammar::gbnf_literal(head) + " " + args + "\n";
    names += (names.empty() ? "" : " | ") + ("tool-" + std::to_string(i));
  }
  const std::string call = "\"{\\\"name\\\": \" ( " + names + " ) \"}\"";
  std::string root;
  switch (calling.format) {
    case ToolCallFormat::Hermes:
      root = "call ::= \"<tool_call>\\n\" " + call + " \"\\n</tool_call>\"\n" +
             (calling.parallel && calling.choice != ToolChoice::Named ? "root ::= call ( \"\\n\" call )*\n" : "root ::= call\n");
      break;
    case ToolCallFormat::Llama3Json:
      root = "root ::= " + call + "\n";
      break;
    case ToolCallFormat::Mistral:  // the [TOOL_CALLS] marker is a special token: forced output starts at '['
      root = "call ::= " + call + "\n" +
             (calling.parallel && calling.choice != ToolChoice::Named ? "root ::= \"[\" call ( \", \" call )* \"]\"\n"
                                                                      : "root ::= \"[\" call \"]\"\n");
      break;
  }
  return root + rules + grammar::json_primitives_gbnf();
}

// ---- ToolCallParser ----------------------------------------------------------------------------

ToolCallParser::ToolCallParser(const ToolCalling& calling) : format_(calling.format), forced_(calling.forced()) {}

ToolCallParser::Delta ToolCallParser::feed(std::string_view text) {
  Delta out;
  buffer_ += text;
  step(out, false);
  return out;
}

ToolCallParser::Delta ToolCallParser::finish() {
  Delta out;
  step(out, true);
  if (calls_ == 0) out.content += whitespace_;  // an all-whitespace answer stays what it was
  whitespace_.clear();
  return out;
}

// Trailing whitespace is held (however the text was cut into pieces): before a call or at the end
// of an answer with calls it is dropped, before more text it is kept.
void ToolCallParser::release(Delta& out, std::string text) {
  size_t keep = text.size();
  while (keep > 0 && is_space(text[keep - 1])) --keep;
  if (keep == 0) {
    whitespace_ += text;
    return;
  }
  out.content += whitespace_ + text.substr(0, keep);
  whitespace_ = text.substr(keep);
}

bool ToolCallParser::take_call_text(const std::string& payload, Delta& out) {
  const OJson j = OJson::parse(payload, nullptr, false);
  std::vector<ToolCall> calls;
  if (format_ == ToolCallFormat::Mistral) {
    if (!j.is_array() || j.empty()) return false;
    for (const OJson& item : j) {
      auto call = call_from_json(item);
      if (!call) return false;
      calls.push_back(std::move(*call));
    }
  } else {
    auto call = call_from_json(j);
    if (!call) return false;
    calls.push_back(std::move(*call));
  }
  calls_ += int64_t(calls.size());
  whitespace_.clear();
  out.calls.insert(out.calls.end(), calls.begin(), calls.end());
  return true;
}

void ToolCallParser::step(Delta& out, bool at_end) {
  for (bool progress = true; progress;) {
    progress = false;
    switch (phase_) {
      case Phase::Start: {  // does the output open with a call?
        size_t first = 0;
        while (first < buffer_.size() && is_space(buffer_[first])) ++first;
        std::string_view rest = std::string_view(buffer_).substr(first);
        if (rest.empty() && !at_end) return;
        std::string_view opener = format_ == ToolCallFormat::Llama3Json ? kPythonTag
                                  : format_ == ToolCallFormat::Mistral   ? kMistralMarker
                                                                         : std::string_view();
        if (!opener.empty() && rest.size() < opener.size() && opener.substr(0, rest.size()) == rest && !at_end) return;
        const bool marked = !opener.empty() && rest.substr(0, opener.size()) == opener;
        if (marked) rest.remove_prefix(opener.size());
        const bool json_call = (format_ == ToolCallFormat::Llama3Json && (rest.empty() || rest[0] == '{')) ||
                               (format_ == ToolCallFormat::Mistral && (marked || (forced_ && !rest.empty() && rest[0] == '[')));
        if (json_call && (marked || !rest.empty())) {
          buffer_ = std::string(rest);
          phase_ = Phase::Call;
        } else {
          phase_ = Phase::Content;
        }
        progress = true;
        break;
      }
      case Phase::Content: {
        std::string_view marker = format_ == ToolCallFormat::Hermes    ? kHermesOpen
                                  : format_ == ToolCallFormat::Mistral ? kMistralMarker
                                                                       : std::string_view();
        const size_t at = marker.empty() ? std::string::npos : buffer_.find(marker);
        if (at != std::string::npos) {
          release(out, buffer_.substr(0, at));
          buffer_.erase(0, at + marker.size());
          phase_ = Phase::Call;
          progress = true;
          break;
        }
        const size_t hold = at_end || marker.empty() ? 0 : marker_prefix_at_end(buffer_, marker);
        release(out, buffer_.substr(0, buffer_.size() - hold));
        buffer_.erase(0, buffer_.size() - hold);
        return;
      }
      case Phase::Call: {
        const std::string opener = format_ == ToolCallFormat::Hermes    ? std::string(kHermesOpen)
                                   : format_ == ToolCallFormat::Mistral ? std::string(kMistralMarker)
                                                                        : std::string();
        size_t end = std::string::npos, resume = 0;
        if (format_ == ToolCallFormat::Hermes) {
          end = buffer_.find(kHermesClose);
          resume = end == std::string::npos ? 0 : end + kHermesClose.size();
        } else {
          end = json_value_end(buffer_);
          resume = end;
        }
        if (end == std::string::npos) {
          if (!at_end) return;
          if (!take_call_text(buffer_, out)) release(out, opener + buffer_);  // unterminated
          buffer_.clear();
          phase_ = Phase::Done;
          return;
        }
        const std::string payload = buffer_.substr(0, end);
        if (!take_call_text(payload, out))
          release(out, opener + buffer_.substr(0, resume));
        buffer_.erase(0, resume);
        phase_ = Phase::Content;
        progress = true;
        break;
      }
      case Phase::Done:
        release(out, buffer_);
        buffer_.clear();
        return;
    }
  }
}

}  // namespace brisk::serve
