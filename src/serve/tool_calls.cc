#include "serve/tool_calls.h"

#include "grammar/json_schema.h"
#include "serve/random_id.h"

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
// npos while it is incomplete.
size_t json_value_end(std::string_view text) {
  size_t first = 0;
  while (first < text.size() && is_space(text[first])) ++first;
  if (first == text.size() || (text[first] != '{' && text[first] != '[')) return std::string_view::npos;
  const size_t end = JsonBracketScan{}.until_closed(text.substr(first));
  return end == std::string_view::npos ? end : first + end;
}

std::string call_id() { return random_id("call_", 24); }

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
  const bool several = calling.parallel && calling.choice != ToolChoice::Named;  // a named tool is called once
  std::string root;
  switch (calling.format) {
    case ToolCallFormat::Hermes:
      root = "call ::= \"<tool_call>\\n\" " + call + " \"\\n</tool_call>\"\n" +
             (several ? "root ::= call ( \"\\n\" call )*\n" : "root ::= call\n");
      break;
    case ToolCallFormat::Llama3Json:
      root = "root ::= " + call + "\n";
      break;
    case ToolCallFormat::Mistral:  // the [TOOL_CALLS] marker is a special token: forced output starts at '['
      root = "call ::= " + call + "\n" +
             (several ? "root ::= \"[\" call ( \", \" call )* \"]\"\n" : "root ::= \"[\" call \"]\"\n");
      break;
  }
  return root + rules + grammar::json_primitives_gbnf();
}

// ---- ToolCallParser ----------------------------------------------------------------------------

namespace {

enum class Match { Yes, NeedMore, No };

// A call's head, {"name": "<name>", "arguments" (or "parameters"): with its object next; `used`:
// the bytes before that object.
Match match_call_head(std::string_view t, std::string& name, size_t& used) {
  size_t i = 0;
  auto space = [&] {
    while (i < t.size() && is_space(t[i])) ++i;
  };
  auto literal = [&](std::string_view word) {
    const size_t n = std::min(word.size(), t.size() - i);
    if (t.substr(i, n) != word.substr(0, n)) return Match::No;
    if (n < word.size()) return Match::NeedMore;
    i += n;
    return Match::Yes;
  };
  for (std::string_view word : {"{", "\"name\"", ":"}) {
    space();
    if (Match m = literal(word); m != Match::Yes) return m;
  }
  space();
  if (i == t.size()) return Match::NeedMore;
  if (t[i] != '"') return Match::No;
  size_t end = i + 1;
  for (bool escaped = false; end < t.size() && (escaped || t[end] != '"'); ++end) escaped = !escaped && t[end] == '\\';
  if (end == t.size()) return Match::NeedMore;
  const OJson parsed = OJson::parse(t.substr(i, end + 1 - i), nullptr, false);
  if (!parsed.is_string()) return Match::No;
  name = parsed.get<std::string>();
  i = end + 1;
  space();
  if (Match m = literal(","); m != Match::Yes) return m;
  space();
  const size_t key = i;
  Match m = literal("\"arguments\"");
  if (m == Match::No) {
    i = key;
    m = literal("\"parameters\"");
  }
  if (m != Match::Yes) return m;
  space();
  if (Match colon = literal(":"); colon != Match::Yes) return colon;
  space();
  if (i == t.size()) return Match::NeedMore;
  if (t[i] != '{') return Match::No;  // arguments as a string of JSON: taken whole instead
  used = i;
  return Match::Yes;
}

}  // namespace

size_t JsonBracketScan::until_closed(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
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

void ToolCallParser::assemble(const std::vector<CallDelta>& deltas, std::vector<ToolCall>& calls) {
  for (const CallDelta& d : deltas) {
    if (d.index >= calls.size()) calls.resize(d.index + 1);
    if (!d.id.empty()) calls[d.index].id = d.id;
    if (!d.name.empty()) calls[d.index].name = d.name;
    calls[d.index].arguments += d.arguments;
  }
}

ToolCallParser::ToolCallParser(const ToolCalling& calling) : format_(calling.format), forced_(calling.forced()) {}

std::string ToolCallParser::opener() const {
  return format_ == ToolCallFormat::Hermes    ? std::string(kHermesOpen)
         : format_ == ToolCallFormat::Mistral ? std::string(kMistralMarker)
                                              : std::string();
}

ToolCallParser::Delta ToolCallParser::feed(std::string_view text, Piece piece) {
  Delta out;
  buffer_ += text;
  step(out, false);
  if (piece == Piece::Last) {
    Delta rest = finish();
    out.content += rest.content;
    out.calls.insert(out.calls.end(), rest.calls.begin(), rest.calls.end());
  }
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

bool ToolCallParser::step_call(Delta& out, bool at_end) {
  auto fail_to_content = [&](size_t length) {  // not a call after all: the text, marker included
    release(out, opener() + buffer_.substr(0, length));
    buffer_.erase(0, length);
    phase_ = Phase::Content;
    part_ = Part::Open;
    return true;
  };
  auto skip_space = [&] {
    size_t n = 0;
    while (n < buffer_.size() && is_space(buffer_[n])) ++n;
    buffer_.erase(0, n);
  };
  switch (part_) {
    case Part::Open:  // a mistral region is a list of calls
      if (format_ != ToolCallFormat::Mistral) {
        part_ = Part::Head;
        return true;
      }
      skip_space();
      if (buffer_.empty()) return at_end ? fail_to_content(0) : false;
      if (buffer_[0] != '[') return fail_to_content(buffer_.size());
      buffer_.erase(0, 1);
      part_ = Part::Head;
      return true;
    case Part::Head: {
      std::string name;
      size_t used = 0;
      const Match m = match_call_head(buffer_, name, used);
      if (m == Match::NeedMore && !at_end) return false;
      if (m != Match::Yes) {
        part_ = Part::Whole;
        return true;
      }
      whitespace_.clear();
      out.calls.push_back({calls_++, call_id(), name, ""});
      buffer_.erase(0, used);
      scan_ = {};
      part_ = Part::Arguments;
      return true;
    }
    case Part::Arguments: {
      const size_t end = scan_.until_closed(buffer_);
      const size_t take = end == std::string::npos ? buffer_.size() : end;
      if (take > 0) {
        if (out.calls.empty() || out.calls.back().index != calls_ - 1) out.calls.push_back({calls_ - 1, "", "", ""});
        out.calls.back().arguments += buffer_.substr(0, take);
        buffer_.erase(0, take);
      }
      if (end == std::string::npos) return false;
      scan_ = {1, false, false};  // still inside the call's object
      part_ = Part::Tail;
      return true;
    }
    case Part::Tail: {  // anything after the arguments, to the call's closing brace
      const size_t end = scan_.until_closed(buffer_);
      buffer_.erase(0, end == std::string::npos ? buffer_.size() : end);
      if (end == std::string::npos) return false;
      part_ = Part::Close;
      return true;
    }
    case Part::Whole: {
      const size_t end = json_value_end(buffer_);
      if (end == std::string::npos) return at_end ? fail_to_content(buffer_.size()) : false;
      auto call = call_from_json(OJson::parse(buffer_.substr(0, end), nullptr, false));
      if (!call) return fail_to_content(end);
      whitespace_.clear();
      out.calls.push_back({calls_++, call->id, call->name, call->arguments});
      buffer_.erase(0, end);
      part_ = Part::Close;
      return true;
    }
    case Part::Close:
      if (format_ == ToolCallFormat::Hermes) {
        const size_t close = buffer_.find(kHermesClose);
        if (close == std::string::npos && !at_end) return false;
        if (close != std::string::npos) buffer_.erase(0, close + kHermesClose.size());
      } else if (format_ == ToolCallFormat::Mistral) {
        skip_space();
        if (buffer_.empty() && !at_end) return false;
        if (!buffer_.empty() && buffer_[0] == ',') {
          buffer_.erase(0, 1);
          part_ = Part::Head;
          return true;
        }
        if (!buffer_.empty() && buffer_[0] == ']') buffer_.erase(0, 1);
      }
      phase_ = Phase::Content;
      part_ = Part::Open;
      return true;
  }
  return false;
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
        std::string_view marker = format_ == ToolCallFormat::Llama3Json ? kPythonTag
                                  : format_ == ToolCallFormat::Mistral   ? kMistralMarker
                                                                         : std::string_view();
        if (!marker.empty() && rest.size() < marker.size() && marker.substr(0, rest.size()) == rest && !at_end) return;
        const bool marked = !marker.empty() && rest.substr(0, marker.size()) == marker;
        if (marked) rest.remove_prefix(marker.size());
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
          part_ = Part::Open;
          progress = true;
          break;
        }
        const size_t hold = at_end || marker.empty() ? 0 : marker_prefix_at_end(buffer_, marker);
        release(out, buffer_.substr(0, buffer_.size() - hold));
        buffer_.erase(0, buffer_.size() - hold);
        return;
      }
      case Phase::Call:
        progress = step_call(out, at_end);
        if (!progress && at_end) phase_ = Phase::Done;  // an unfinished call: what it streamed stands
        progress = progress || at_end;
        break;
      case Phase::Done:
        buffer_.clear();
        return;
    }
  }
}

}  // namespace brisk::serve
