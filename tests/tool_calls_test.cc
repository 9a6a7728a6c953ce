// Tool calling and structured output at the protocol level: the parser for the three published
// formats (whole and streamed byte by byte), the forced-call grammars, and field errors.
#include <gtest/gtest.h>

#include "grammar/grammar.h"
#include "grammar/token_masks.h"
#include "serve/openai_protocol.h"
#include "serve/structured_output.h"
#include "serve/tool_calls.h"

namespace brisk::serve {
namespace {

using OJson = nlohmann::ordered_json;

ToolCalling calling(ToolCallFormat format, ToolChoice choice = ToolChoice::Auto) {
  ToolCalling c;
  c.tools = OJson::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
      "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}},
      "required": ["city", "unit"], "additionalProperties": false}}},
    {"type": "function", "function": {"name": "now"}}])");
  c.choice = choice;
  c.format = format;
  return c;
}

struct Parsed {
  std::string content;
  std::vector<ToolCall> calls;
  size_t deltas = 0;  // call deltas the parser gave
};

// Whole, and fed one byte at a time: the same split either way.
Parsed parse(const ToolCalling& c, const std::string& text) {
  Parsed whole, streamed;
  for (int pass = 0; pass < 2; ++pass) {
    ToolCallParser parser(c);
    Parsed& out = pass == 0 ? whole : streamed;
    auto take = [&](ToolCallParser::Delta d) {
      out.content += d.content;
      ToolCallParser::assemble(d.calls, out.calls);
      out.deltas += d.calls.size();
    };
    if (pass == 0) take(parser.feed(text));
    else
      for (char ch : text) take(parser.feed(std::string(1, ch)));
    take(parser.finish());
  }
  EXPECT_EQ(whole.content, streamed.content) << text;
  EXPECT_EQ(whole.calls.size(), streamed.calls.size()) << text;
  for (size_t i = 0; i < std::min(whole.calls.size(), streamed.calls.size()); ++i) {
    EXPECT_EQ(whole.calls[i].name, streamed.calls[i].name);
    EXPECT_EQ(whole.calls[i].arguments, streamed.calls[i].arguments);
  }
  whole.deltas = streamed.deltas;  // what a byte-by-byte stream sends
  return whole;
}

TEST(ToolCalls, HermesSplitsContentAndCalls) {
  const auto c = calling(ToolCallFormat::Hermes);
  auto p = parse(c, "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"c\"}}\n"
                    "</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>");
  EXPECT_EQ(p.content, "Let me check.");  // whitespace before a call is dropped
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].arguments, R"({"city": "Oslo", "unit": "c"})");  // as written, streamed as it came
  EXPECT_EQ(p.calls[1].arguments, "{}");
  EXPECT_GT(p.deltas, 20u);  // byte by byte: the name first, then the arguments piece by piece
  EXPECT_EQ(p.calls[0].id.rfind("call_", 0), 0u);
  EXPECT_NE(p.calls[0].id, p.calls[1].id);
  // Not a call: stays content exactly; a lone '<' is released at the end.
  EXPECT_EQ(parse(c, "a <tool_call>not json</tool_call> b <").content, "a <tool_call>not json</tool_call> b <");
  EXPECT_EQ(parse(c, "plain answer").content, "plain answer");
  // Unterminated but complete JSON (max_tokens cut the closing tag) still counts; arguments given
  // as a string of JSON are taken whole, as an object's text.
  auto as_string = parse(c, "<tool_call>{\"name\": \"now\", \"arguments\": \"{\\\"a\\\": 1}\"}");
  ASSERT_EQ(as_string.calls.size(), 1u);
  EXPECT_EQ(as_string.calls[0].arguments, R"({"a":1})");
  // Keys in another order: taken whole once the object closes.
  auto reordered = parse(c, "<tool_call>{\"arguments\": {\"x\": [1, \"}\"]}, \"name\": \"now\"}</tool_call>");
  ASSERT_EQ(reordered.calls.size(), 1u);
  EXPECT_EQ(reordered.calls[0].arguments, R"({"x":[1,"}"]})");
  EXPECT_EQ(reordered.content, "");
}

TEST(ToolCalls, Llama3JsonAndMistral) {
  auto l = parse(calling(ToolCallFormat::Llama3Json),
                 "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\", \"unit\": \"f\"}}");
  ASSERT_EQ(l.calls.size(), 1u);
  EXPECT_EQ(l.calls[0].arguments, R"({"city": "Rome", "unit": "f"})");
  EXPECT_EQ(l.content, "");
  EXPECT_EQ(parse(calling(ToolCallFormat::Llama3Json), "  {\"name\": \"now\", \"parameters\": {}}").calls.size(), 1u);
  EXPECT_EQ(parse(calling(ToolCallFormat::Llama3Json), "The {braces} stay").content, "The {braces} stay");
  auto m = parse(calling(ToolCallFormat::Mistral),
                 "[TOOL_CALLS] [{\"name\": \"now\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": "
                 "{\"city\": \"Lima\", \"unit\": \"c\"}}]");
  ASSERT_EQ(m.calls.size(), 2u);
  EXPECT_EQ(m.calls[1].name, "get_weather");
  EXPECT_EQ(parse(calling(ToolCallFormat::Mistral), "[1, 2] is a list").content, "[1, 2] is a list");
  // Forced: the grammar writes the array without the special-token marker.
  EXPECT_EQ(parse(calling(ToolCallFormat::Mistral, ToolChoice::Required), "[{\"name\": \"now\", \"arguments\": {}}]").calls.size(), 1u);
}

// The forced grammar admits exactly the format's calls, each parsing back with valid arguments.
TEST(ToolCalls, ForcedGrammarsMatchTheirParsers) {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, char(b)));
  bytes.push_back("");
  auto vocab = std::make_shared<grammar::TokenVocabulary>(bytes, std::vector<std::string>{}, std::vector<int32_t>{256});
  auto accepts = [&](const std::string& gbnf, const std::string& text) {
    auto g = grammar::Grammar::parse(gbnf);
    EXPECT_TRUE(g.ok()) << (g.ok() ? "" : g.error().message) << "\n" << gbnf;
    grammar::GrammarMatcher m(std::make_shared<grammar::ConstrainedGrammar>(std::move(*g), vocab));
    for (char ch : text)
      if (!m.accept(uint8_t(ch))) return false;
    return m.accept(256);
  };
  struct Case {
    ToolCallFormat format;
    std::string good, bad;
  };
  const std::vector<Case> cases = {
      {ToolCallFormat::Hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"c\"}}\n</tool_call>",
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"},
      {ToolCallFormat::Llama3Json, "{\"name\": \"now\", \"parameters\": {}}", "{\"name\": \"later\", \"parameters\": {}}"},
      {ToolCallFormat::Mistral, "[{\"name\": \"now\", \"arguments\": {\"x\": 1}}, {\"name\": \"now\", \"arguments\": {}}]",
       "[{\"name\": \"now\", \"arguments\": 5}]"}};
  for (const Case& c : cases) {
    const ToolCalling tools = calling(c.format, ToolChoice::Required);
    auto gbnf = forced_tool_call_grammar(tools);
    ASSERT_TRUE(gbnf.ok()) << gbnf.error().message;
    EXPECT_TRUE(accepts(gbnf.value(), c.good)) << tool_call_format_name(c.format);
    EXPECT_FALSE(accepts(gbnf.value(), c.bad)) << tool_call_format_name(c.format);
    EXPECT_FALSE(parse(tools, c.good).calls.empty());
  }
  ToolCalling named = calling(ToolCallFormat::Hermes, ToolChoice::Named);
  named.named = "now";
  auto only_now = forced_tool_call_grammar(named);
  ASSERT_TRUE(only_now.ok());
  EXPECT_TRUE(accepts(only_now.value(), "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(accepts(only_now.value(), cases[0].good));
}

TEST(ToolCalls, RequestFieldsAreChecked) {
  auto chat = [](const std::string& extra) {
    return parse_chat_body(R"({"messages": [{"role": "user", "content": "x"}], )" + extra + "}");
  };
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])";
  auto ok = chat(tools + R"(, "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": false)");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok.value().params.tools.choice, ToolChoice::Named);
  EXPECT_FALSE(ok.value().params.tools.parallel);
  EXPECT_EQ(chat(tools).value().params.tools.choice, ToolChoice::Auto);
  EXPECT_EQ(chat(tools + R"(, "tool_choice": {"type": "function", "function": {"name": "g"}})").error().param, "tool_choice");
  EXPECT_EQ(chat(R"("tool_choice": "required")").error().param, "tool_choice");
  EXPECT_EQ(chat(R"("tools": [{"type": "function", "function": {"name": "a b"}}])").error().param, "tools[0].function.name");
  EXPECT_EQ(chat(R"("tools": [{"type": "code_interpreter"}])").error().param, "tools[0]");
  EXPECT_EQ(chat(tools + R"(, "tool_choice": "required", "response_format": {"type": "json_object"})").error().param,
            "tool_choice");
  // History: assistant tool_calls (arguments text -> object) and tool results.
  auto history = parse_chat_body(R"({"messages": [{"role": "user", "content": "x"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "42"}]})");
  ASSERT_TRUE(history.ok()) << history.error().message;
  EXPECT_EQ(history.value().messages[1]["tool_calls"][0]["function"]["arguments"]["a"], 1);
  EXPECT_EQ(history.value().messages[2]["tool_call_id"], "call_1");
  EXPECT_EQ(parse_chat_body(R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]})")
                .error().param, "messages[0].tool_calls[0].function.arguments");
}

TEST(StructuredOutput, FieldsNameTheirErrors) {
  auto read = [](const std::string& body) {
    std::string gbnf;
    auto bad = read_structured_output(OJson::parse(body), gbnf);
    return bad ? bad->param + ": " + bad->message : gbnf;
  };
  EXPECT_EQ(read(R"({"response_format": {"type": "text"}})"), "");
  EXPECT_NE(read(R"({"response_format": {"type": "json_object"}})").find("root ::= json-object"), std::string::npos);
  EXPECT_EQ(read(R"({"response_format": {"type": "xml"}})").rfind("response_format.type: ", 0), 0u);
  EXPECT_EQ(read(R"({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})").rfind("response_format.json_schema.name", 0), 0u);
  const std::string pattern = read(R"({"response_format": {"type": "json_schema", "json_schema": {"name": "x",
      "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "^a"}}}}}})");
  EXPECT_EQ(pattern.rfind("response_format.json_schema.schema: ", 0), 0u) << pattern;
  EXPECT_NE(pattern.find("#/properties/a"), std::string::npos) << pattern;
  EXPECT_NE(pattern.find("'pattern'"), std::string::npos) << pattern;
  EXPECT_EQ(read(R"({"grammar": "root ::= x"})").rfind("grammar: ", 0), 0u);
  EXPECT_EQ(read(R"({"grammar": 5})").rfind("grammar: ", 0), 0u);
  EXPECT_EQ(read(R"({"grammar": "root ::= \"a\"", "response_format": {"type": "json_object"}})").rfind("grammar: ", 0), 0u);
  EXPECT_EQ(parse_completion_body(R"({"prompt": "x", "grammar": "root ::= \"a\"", "ignore_eos": true})").error().param,
            "ignore_eos");
}

}  // namespace
}  // namespace brisk::serve
