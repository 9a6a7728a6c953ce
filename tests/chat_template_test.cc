// Chat templates: published model templates against renderings by jinja2/transformers
// (tests/fixtures/chat/expected.json, scripts/golden/make_chat_fixtures.py), the Jinja subset
// feature by feature, error messages, and random mutations of real templates (no crash, no hang).
#include "serve/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace brisk {
namespace {

namespace fs = std::filesystem;
using OrderedJson = nlohmann::ordered_json;

const fs::path kChatDir = fs::path(BRISK_FIXTURES_DIR) / "chat";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Renders `source` with `variables` as extra globals; returns the output or "ERROR: message".
std::string render(const std::string& source, const OrderedJson& variables = OrderedJson::object(),
                   const OrderedJson& messages = OrderedJson::array()) {
  auto parsed = ChatTemplate::parse(source, "<s>", "</s>");
  if (!parsed.ok()) return "ERROR: " + parsed.error().message;
  ChatTemplateInputs inputs;
  inputs.variables = variables;
  auto out = parsed->apply_json(messages, GenerationPrompt::kOmit, inputs);
  return out.ok() ? out.value() : "ERROR: " + out.error().message;
}

// ---- published templates, byte for byte ----

TEST(ChatTemplateGolden, MatchesReferenceRenderings) {
  const OrderedJson expected = OrderedJson::parse(read_file(kChatDir / "expected.json"));
  ASSERT_GT(expected["cases"].size(), 100u);
  std::map<std::string, ChatTemplate> templates;
  for (const auto& [name, info] : expected["templates"].items()) {
    auto bos = info["bos_token"].is_null() ? std::nullopt : std::optional<std::string>(info["bos_token"]);
    auto eos = info["eos_token"].is_null() ? std::nullopt : std::optional<std::string>(info["eos_token"]);
    auto parsed = ChatTemplate::parse(read_file(kChatDir / info["file"].get<std::string>()), bos, eos);
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.error().message;
    templates.emplace(name, parsed.value());
  }
  for (const OrderedJson& c : expected["cases"]) {
    const std::string label = c["template"].get<std::string>() + " / " +
                              c["conversation"].get<std::string>() +
                              (c["add_generation_prompt"].get<bool>() ? " / +prompt" : "");
    const OrderedJson& conversation = expected["conversations"][c["conversation"].get<std::string>()];
    ChatTemplateInputs inputs;
    if (conversation.contains("tools")) inputs.tools = conversation["tools"];
    const auto prompt =
        c["add_generation_prompt"].get<bool>() ? GenerationPrompt::kAppend : GenerationPrompt::kOmit;
    auto out = templates.at(c["template"]).apply_json(conversation["messages"], prompt, inputs);
    if (c.contains("error")) {
      ASSERT_FALSE(out.ok()) << label;
      EXPECT_EQ(out.error().message, c["error"].get<std::string>()) << label;
    } else {
      ASSERT_TRUE(out.ok()) << label << ": " << out.error().message;
      EXPECT_EQ(out.value(), c["output"].get<std::string>()) << label;
    }
  }
}

// One behaviour per snippet, rendered by jinja2/transformers with the same variables.
TEST(ChatTemplateGolden, SnippetsMatchReference) {
  const OrderedJson expected = OrderedJson::parse(read_file(kChatDir / "expected.json"));
  ASSERT_GT(expected["snippets"].size(), 40u);
  const OrderedJson& variables = expected["snippet_vars"];
  for (const OrderedJson& snippet : expected["snippets"]) {
    const std::string source = snippet["template"];
    const std::string out = render(source, variables);
    if (!snippet.contains("error")) {
      EXPECT_EQ(out, snippet["output"].get<std::string>()) << source;
    } else if (snippet["error"].is_string()) {
      EXPECT_EQ(out, "ERROR: " + snippet["error"].get<std::string>()) << source;
    } else {
      EXPECT_EQ(out.rfind("ERROR: chat template line ", 0), 0u) << source << " rendered " << out;
    }
  }
}

TEST(ChatTemplateGolden, SimpleMessagesApi) {
  auto chatml = ChatTemplate::parse(read_file(kChatDir / "chatml.jinja"), std::nullopt, "<|im_end|>");
  ASSERT_TRUE(chatml.ok());
  auto out = chatml->apply({{"system", "Be brief."}, {"user", "Hi"}}, GenerationPrompt::kAppend);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(
      out.value(),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateGolden, MistralAlternationIsATemplateError) {
  auto mistral = ChatTemplate::parse(read_file(kChatDir / "mistral-7b-instruct-v0.1.jinja"), "<s>", "</s>");
  ASSERT_TRUE(mistral.ok());
  auto out = mistral->apply({{"user", "a"}, {"user", "b"}}, GenerationPrompt::kOmit);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message, "Conversation roles must alternate user/assistant/user/assistant/...");
}

// ---- loading from a model folder ----

class ChatTemplateConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("brisk-chat-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  fs::path dir_;
};

TEST_F(ChatTemplateConfig, StringTemplateAndSpecialTokens) {
  write(
      "tokenizer_config.json",
      R"({"bos_token": {"content": "<B>"}, "eos_token": "<E>", "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"})");
  auto chat = ChatTemplate::from_tokenizer_config(dir_);
  ASSERT_TRUE(chat.ok()) << chat.error().message;
  EXPECT_EQ(chat->apply({{"user", "x"}}, GenerationPrompt::kOmit).value(), "<B>x<E>");
}

TEST_F(ChatTemplateConfig, ListTemplatePicksDefault) {
  write(
      "tokenizer_config.json",
      R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ bos_token }}"}]})");
  auto chat = ChatTemplate::from_tokenizer_config(dir_);
  ASSERT_TRUE(chat.ok()) << chat.error().message;
  EXPECT_EQ(chat->apply({}, GenerationPrompt::kOmit).value(), "D");  // no bos_token: undefined
}

TEST_F(ChatTemplateConfig, JinjaFileWins) {
  write("tokenizer_config.json", R"({"chat_template": "config"})");
  write("chat_template.jinja", "file\n");
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(dir_)->apply({}, GenerationPrompt::kOmit).value(), "file");
}

TEST_F(ChatTemplateConfig, SyntaxErrorNamesFileAndLine) {
  write("tokenizer_config.json", R"({"chat_template": "a\nb{% if x %}"})");
  auto chat = ChatTemplate::from_tokenizer_config(dir_);
  ASSERT_FALSE(chat.ok());
  EXPECT_NE(chat.error().message.find("tokenizer_config.json: chat template line 2"), std::string::npos)
      << chat.error().message;
}

TEST_F(ChatTemplateConfig, MissingTemplateIsAClearError) {
  write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  auto chat = ChatTemplate::from_tokenizer_config(dir_);
  ASSERT_FALSE(chat.ok());
  EXPECT_NE(chat.error().message.find("the model has no chat_template in tokenizer_config.json"),
            std::string::npos);
}

TEST(ChatTemplateSharedModels, HaveNoChatTemplate) {
  for (const char* model : {"sotu-llama", "sotu-gpt2", "sotu-qwen2"}) {
    const fs::path dir = fs::path(BRISK_SHARED_DIR) / "models" / model;
    if (!fs::exists(dir)) GTEST_SKIP() << dir << " not present";
    auto chat = ChatTemplate::from_tokenizer_config(dir);
    ASSERT_FALSE(chat.ok()) << model;
    EXPECT_NE(chat.error().message.find("the model has no chat_template in tokenizer_config.json"),
              std::string::npos)
        << chat.error().message;
  }
}

// ---- the Jinja subset ----

TEST(ChatTemplateJinja, ExpressionsAndLiterals) {
  EXPECT_EQ(
      render("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 / 2 }}|{{ 2 ** 10 }}"),
      "7|3|-4|1|2|3.5|1024");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none ~ true }}|{{ \"x\\ty\\u00e9\" }}|{{ 'ab' 'cd' }}"),
            "a1NoneTrue|x\ty\u00e9|abcd");
  EXPECT_EQ(render("{{ [1, 'a', none, 2.5] }}|{{ {'k': 'v', 'n': 1} }}|{{ (1, 2) | length }}"),
            "[1, 'a', None, 2.5]|{'k': 'v', 'n': 1}|2");
  EXPECT_EQ(render("{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1.5e-5 }}|{{ 3 * 1.0 }}"),
            "1.0|0.30000000000000004|1e+20|1.5e-05|3.0");
  EXPECT_EQ(render("{{ 'yes' if 1 < 2 < 3 else 'no' }}|{{ 'x' if false }}|{{ not 0 and 'b' or 'c' }}"),
            "yes||b");
  EXPECT_EQ(
      render("{{ 'b' in 'abc' }}{{ 2 not in [1, 3] }}{{ 'k' in {'k': 1} }}{{ 1 == 1.0 }}{{ true == 1 }}"),
      "TrueTrueTrueTrueTrue");
}

TEST(ChatTemplateJinja, SubscriptsSlicesAndAttributes) {
  const OrderedJson vars = {{"xs", {1, 2, 3, 4}}, {"m", {{"role", "user"}, {"content", "héllo"}}}};
  EXPECT_EQ(render("{{ xs[1:] }}{{ xs[::-1] }}{{ xs[-1] }}{{ xs[:-2] }}{{ xs[10] }}", vars),
            "[2, 3, 4][4, 3, 2, 1]4[1, 2]");
  EXPECT_EQ(
      render("{{ m.role }}{{ m['content'] }}{{ m.content[1] }}{{ m.content[::-1] }}{{ m.missing }}", vars),
      "userhélloéolléh");
  EXPECT_EQ(render("{{ m.missing.deeper }}", vars),
            "ERROR: chat template line 1: 'dict object' has no attribute 'missing'");
  EXPECT_EQ(render("{{ nothing }}|{{ nothing is defined }}|{{ nothing | length }}|{% for x in nothing %}x{% "
                   "endfor %}"),
            "|False|0|");
}

TEST(ChatTemplateJinja, LoopsAndScoping) {
  const OrderedJson vars = {{"xs", {"a", "b", "c"}}, {"d", {{"k1", 1}, {"k2", 2}}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ x }}{{ loop.first }}{{ loop.last "
                   "}}{{ loop.length }};{% endfor %}",
                   vars),
            "01aTrueFalse3;12bFalseFalse3;23cFalseTrue3;");
  EXPECT_EQ(
      render("{% for k, v in d.items() %}{{ k }}={{ v }} {% endfor %}|{% for k in d %}{{ k }}{% endfor %}",
             vars),
      "k1=1 k2=2 |k1k2");
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ x }}{{ loop.length }}{% endfor %}", vars), "a2c2");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in xs %}{% if x == 'b' %}{% continue %}{% endif %}{% if x == 'c' %}{% break "
                   "%}{% endif %}{{ x }}{% endfor %}",
                   vars),
            "a");
  EXPECT_EQ(render("{% set n = 0 %}{% for x in xs %}{% set n = n + 1 %}{% endfor %}{{ n }}", vars), "0");
  EXPECT_EQ(
      render("{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
             vars),
      "3");
  EXPECT_EQ(render("{% if true %}{% set y = 5 %}{% endif %}{{ y }}"), "5");
  EXPECT_EQ(render("{% for i in range(3) %}{{ i }}{% endfor %}{{ range(1, 7, 2) }}"), "012[1, 3, 5]");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.cycle('o', 'e') }}{% endfor %}", vars), "oeo");
}

TEST(ChatTemplateJinja, SetBlocksAndMacros) {
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a + b }}{% set c %}in{{ a }}{% endset %}{{ c }}"), "3in1");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') "
                   "}}{{ greet('B', punct='?') }}"),
            "Hi A!Hi B?");
}

TEST(ChatTemplateJinja, RepeatingAnEmptySequenceIsImmediate) {
  EXPECT_EQ(render("[{{ 'x' * 0 * 10000000000 }}][{{ ([] * 10000000000) | length }}]"), "[][0]");
}

// Markup as jinja2 3.1 (autoescape off, transformers' environment) renders it: escape escapes once,
// safe output passes escape untouched, + with Markup escapes the plain side, ~ does not.
TEST(ChatTemplateJinja, SafeAndEscapeFollowMarkupsafe) {
  EXPECT_EQ(render(R"({{ "<a>"|e|e }}|{{ "<a>"|safe|e }}|{{ "<a>"|safe|forceescape }})"), "&lt;a&gt;|<a>|&lt;a&gt;");
  EXPECT_EQ(render(R"({{ ("<b>"|safe) + "<i>" }}|{{ "<i>" + ("<b>"|safe) }}|{{ ("<b>"|safe) ~ "<i>" }})"),
            "<b>&lt;i&gt;|&lt;i&gt;<b>|<b><i>");
  EXPECT_EQ(render(R"({{ ("<b>"|safe)|string + "&" }}|{{ none|e }}|{{ 5|e }}|{{ ("<b>"|safe) == "<b>" }})"),
            "<b>&amp;|None|5|True");
}

TEST(ChatTemplateJinja, FilterBlocks) {
  // As jinja2: the block's rendered text goes through the chain, left to right, with arguments.
  EXPECT_EQ(render("{% filter upper %}hello {{ name }}{% endfilter %}!", {{"name", "bob"}}), "HELLO BOB!");
  EXPECT_EQ(render("[{% filter trim | upper %}  x y  {% endfilter %}]"), "[X Y]");
  EXPECT_EQ(render("{% filter replace('a', 'o') %}banana{% endfilter %}"), "bonono");
  EXPECT_EQ(render("{% for i in [1, 2] %}{% filter upper %}a{{ i }}{% endfilter %}{% endfor %}"), "A1A2");
  EXPECT_EQ(render("{% filter nosuch %}x{% endfilter %}").rfind("ERROR:", 0), 0u);
  EXPECT_EQ(render("{% filter upper %}x").rfind("ERROR:", 0), 0u);  // never closed
}

TEST(ChatTemplateJinja, WhitespaceControl) {
  EXPECT_EQ(render("a  {{- 'b' -}}  \n c"), "abc");
  // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before one.
  EXPECT_EQ(render("{% if true %}\n    x\n    {% endif %}\ny"), "    x\ny");
  EXPECT_EQ(render("{% if true %}\nx{{ '' }}\n{% endif %}"), "x\n");
  EXPECT_EQ(render("  {%+ if true %}x{% endif +%}\nz"), "  x\nz");
  EXPECT_EQ(render("a\n  {# note #}\nb"), "a\nb");
  EXPECT_EQ(render("line\r\nnext\n"), "line\nnext");  // one trailing newline is dropped
}

TEST(ChatTemplateJinja, Filters) {
  const OrderedJson vars = {
      {"ms", {{{"role", "user"}, {"n", 1}}, {{"role", "bot"}, {"n", 2}}, {{"role", "user"}, {"n", 3}}}}};
  EXPECT_EQ(render("{{ '  x \n' | trim }}|{{ 'aBc' | upper }}{{ 'aBc' | lower }}|{{ 'hello world' | title "
                   "}}|{{ 'hELLO' | capitalize }}"),
            "x|ABCabc|Hello World|Hello");
  EXPECT_EQ(render("{{ [1, 2] | join(', ') }}|{{ 'abc' | replace('b', 'X') }}|{{ 'abc' | first }}{{ [1, 2] | "
                   "last }}|{{ '12' | int + 1 }}|{{ 3 | string }}"),
            "1, 2|aXc|a2|13|3");
  EXPECT_EQ(render("{{ x | default('d') }}{{ '' | default('e', true) }}{{ 'v' | d('no') }}"), "dev");
  EXPECT_EQ(render("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='n') | list }}|{{ ms | "
                   "rejectattr('role', 'eq', 'user') | length }}",
                   vars),
            "[1, 3]|1");
  EXPECT_EQ(render("{{ ms | map(attribute='role') | unique | join(',') }}|{{ [3, 1, 2] | sort }}|{{ [1, 2] | "
                   "reverse | list }}",
                   vars),
            "user,bot|[1, 2, 3]|[2, 1]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': [1.5, none, true, 'é\"']} | tojson }}"),
            "{\"b\": 1, \"a\": [1.5, null, true, \"é\\\"\"]}");
  EXPECT_EQ(render("{{ {'a': [1], 'b': {}} | tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1\n  ],\n  \"b\": {}\n}");
  EXPECT_EQ(render("{{ {'a': 1} | items | list }}|{{ ['x', 'y'] | select('equalto', 'y') | list }}"),
            "[('a', 1)]|['y']");
}

TEST(ChatTemplateJinja, TestsAndMethods) {
  EXPECT_EQ(render("{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 3 is odd "
                   "}}{{ 4 is divisibleby 2 }}{{ 1 is not defined }}"),
            "TrueTrueTrueTrueTrueTrueFalse");
  EXPECT_EQ(
      render(
          "{{ '  a b  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'a,b'.split(',') }}|{{ ' a  b '.split() }}"),
      "a b|axx|['a', 'b']|['a', 'b']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'ab'.upper() }}{{ "
                   "'a-b'.replace('-', '+') }}{{ 'a b'.title() }}"),
            "TrueTrueABa+bA B");
  EXPECT_EQ(render("{{ d.get('k') }}{{ d.get('z', 'none') }}{{ d.get('z') }}{{ d.keys() | list }}{{ "
                   "d.values() | list }}",
                   {{"d", {{"k", 1}}}}),
            "1noneNone['k'][1]");
}

TEST(ChatTemplateJinja, Globals) {
  auto chat = ChatTemplate::parse(
      "{{ strftime_now('%Y-%m-%d') }}|{{ messages | length }}|{{ add_generation_prompt }}|{{ tools is none "
      "}}",
      std::nullopt, std::nullopt);
  ASSERT_TRUE(chat.ok());
  ChatTemplateInputs inputs;
  inputs.now = 86400 * 365;  // 1971-01-01 (00:00 UTC; any local offset keeps the year's first days)
  auto out = chat->apply_json(OrderedJson::array({{{"role", "user"}, {"content", "x"}}}),
                              GenerationPrompt::kAppend, inputs);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out.value() == "1971-01-01|1|True|True" || out.value() == "1970-12-31|1|True|True")
      << out.value();
}

TEST(ChatTemplateJinja, ErrorsNameTheLine) {
  EXPECT_EQ(render("a\n{{ x | nosuchfilter }}"),
            "ERROR: chat template line 2: unknown filter 'nosuchfilter'");
  EXPECT_EQ(render("a\n\n{% if x %}never closed"),
            "ERROR: chat template line 3: '{% if %}' is never closed: expected '{% endif %}'");
  EXPECT_EQ(render("ok\n{{ x "), "ERROR: chat template line 2: unterminated '{{' tag: missing '}}'");
  EXPECT_EQ(render("{# open"), "ERROR: chat template line 1: unterminated comment: missing '#}'");
  EXPECT_EQ(render("{{ 'abc }}"), "ERROR: chat template line 1: unterminated string literal");
  EXPECT_EQ(render("{% frobnicate %}"), "ERROR: chat template line 1: unknown tag 'frobnicate'");
  EXPECT_EQ(render("{% endfor %}"),
            "ERROR: chat template line 1: unexpected '{% endfor %}' with no open block it could close");
  EXPECT_EQ(render("{{ 1 + }}"), "ERROR: chat template line 1: unexpected '}}', expected an expression");
  EXPECT_EQ(render("\n{{ 'a' + 1 }}"),
            "ERROR: chat template line 2: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(render("{{ 1 // 0 }}"), "ERROR: chat template line 1: integer division or modulo by zero");
  EXPECT_EQ(render("{{ raise_exception('Bad roles') }}"), "ERROR: Bad roles");
  EXPECT_EQ(render("{% break %}"), "ERROR: chat template line 1: 'break' outside a loop");
  EXPECT_EQ(render("{{ [].append(1) }}"),
            "ERROR: chat template line 1: list.append() is not allowed: template values are immutable");
}

// Steps bound the nodes run, not the work in each: these run few steps, each building a
// 100,000-item range or a 60 MB string, and rendered for minutes to hours (found by
// fuzz/chat_template_fuzzer as a timeout). The time limit stops them.
TEST(ChatTemplateJinja, CostlyStepsStopAtTheTimeLimit) {
  for (const std::string source :
       {"{% for i in range(100000) %}{% for j in range(100000) %}{% break %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{% set x = 'a' * 60000000 %}{% endfor %}"}) {
    auto chat = ChatTemplate::parse(source, std::nullopt, std::nullopt);
    ASSERT_TRUE(chat.ok()) << chat.error().message;
    jinja::RenderLimits limits;
    limits.max_time = std::chrono::milliseconds(100);
    chat->set_limits(limits);
    auto out = chat->apply_json(OrderedJson::array(), GenerationPrompt::kOmit);
    ASSERT_FALSE(out.ok()) << source;
    EXPECT_NE(out.error().message.find("time limit of 100 ms"), std::string::npos) << out.error().message;
  }
}

// A macro's closure holds the frames it was defined in, one of which holds the macro: a cycle of
// shared_ptrs that kept every render's variables (a request's messages) alive after the render,
// found by fuzz/chat_template_fuzzer (LeakSanitizer). A probe in the globals counts its owners.
TEST(ChatTemplateJinja, MacrosReleaseTheRenderVariables) {
  for (const std::string source : {"{% macro f(n) %}{{ probe() }}{{ n }}{% endmacro %}{{ f(1) }}",
                                   "{% for i in [1] %}{% macro g() %}{{ g() }}{% endmacro %}{{ g() }}{% endfor %}"}) {
    auto probe_owner = std::make_shared<int>(0);
    jinja::ValueDict globals;
    globals.set("probe", jinja::Value::function([probe_owner](const jinja::CallArgs&) { return jinja::Value(7); }));
    const jinja::NodeList program = jinja::parse_template(source);
    try {
      EXPECT_EQ(jinja::render_template(program, globals, jinja::RenderLimits{}), "71") << source;
    } catch (const jinja::TemplateError& e) {  // the recursive one: "nested too deeply"
      EXPECT_NE(std::string(e.what()).find("nested too deeply"), std::string::npos) << e.what();
    }
    globals = {};
    EXPECT_EQ(probe_owner.use_count(), 1) << source;
  }
}

TEST(ChatTemplateJinja, LimitsStopRunawayTemplates) {
  {  // the step budget, with the clock out of the way: a loaded CI machine hit the 2 s limit first
    auto chat = ChatTemplate::parse("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                                    std::nullopt, std::nullopt);
    ASSERT_TRUE(chat.ok()) << chat.error().message;
    jinja::RenderLimits limits;
    limits.max_time = std::chrono::minutes(10);
    chat->set_limits(limits);
    auto out = chat->apply_json(OrderedJson::array(), GenerationPrompt::kOmit);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.error().message.find("step budget"), std::string::npos) << out.error().message;
  }
  EXPECT_NE(render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").find("nested too deeply"),
            std::string::npos);
  EXPECT_NE(
      render("{{" + std::string(5000, '(') + "1" + std::string(5000, ')') + "}}").find("nested too deeply"),
      std::string::npos);
  EXPECT_NE(render("{{ 'x' * 100000000000 }}").find("too large"), std::string::npos);
}

// Operator, attribute, filter and conditional chains are built in loops, not by recursion, but
// render (and are freed) recursively: 20,000 links overflowed the stack. Every chain kind is
// refused with the limit named; a chain of ordinary length still renders.
TEST(ChatTemplateJinja, LongChainsAreRefusedNamingTheLimit) {
  const auto chain = [](const std::string& first, const std::string& link, int links) {
    std::string source = "{{ " + first;
    for (int i = 0; i < links; ++i) source += link;
    return source + " }}";
  };
  for (const auto& [first, link] :
       std::vector<std::pair<std::string, std::string>>{{"1", " + 1"},
                                                        {"'a'", " ~ 'a'"},
                                                        {"true", " and true"},
                                                        {"1", " * 1"},
                                                        {"2", " ** 1"},
                                                        {"x", ".a"},
                                                        {"x", "[0]"},
                                                        {"'a'", " | trim"},
                                                        {"1", " if true else 1"}}) {
    const std::string out = render(chain(first, link, 20'000));
    EXPECT_NE(out.find("nested too deeply (the limit is 128 levels"), std::string::npos)
        << link << ": " << out;
  }
  EXPECT_EQ(render(chain("1", " + 1", 100)), "101");
}

// Random edits of real templates must parse or fail cleanly and render within the limits.
TEST(ChatTemplateFuzz, MutatedTemplatesNeverCrash) {
  std::vector<std::string> sources;
  for (const auto& entry : fs::directory_iterator(kChatDir)) {
    if (entry.path().extension() == ".jinja") sources.push_back(read_file(entry.path()));
  }
  ASSERT_FALSE(sources.empty());
  const std::string alphabet = "{}%#-+()[]'\".,|:=~*/ \n\\abcfinorstx0123456789_";
  const OrderedJson messages =
      OrderedJson::parse(R"([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
      {"role": "assistant", "content": "a"}, {"role": "user", "content": "é"}])");
  std::mt19937 rng(1234);
  int rendered = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string s = sources[rng() % sources.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0:
          s.erase(at, 1 + rng() % 3);
          break;
        case 1:
          s.insert(at, 1, c);
          break;
        case 2:
          s[at] = c;
          break;
        default:
          s.insert(at, s.substr(rng() % s.size(), rng() % 16));
          break;
      }
    }
    auto chat = ChatTemplate::parse(s, "<s>", "</s>");
    if (!chat.ok()) {
      EXPECT_FALSE(chat.error().message.empty());
      continue;
    }
    chat->set_limits({.max_steps = 200'000, .max_output_bytes = 1 << 20, .max_call_depth = 16});
    auto out =
        chat->apply_json(messages, iteration % 2 ? GenerationPrompt::kAppend : GenerationPrompt::kOmit);
    rendered += out.ok();
  }
  EXPECT_GT(rendered, 100);  // most single edits still leave a working template
}

}  // namespace
}  // namespace brisk
