// The server's protocol layer without an engine: request parsing and validation, SSE framing,
// Prometheus text, the API-key check, and a fuzz of the JSON paths (no input may crash them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "serve/auth.h"
#include "serve/metrics.h"
#include "serve/openai_protocol.h"
#include "serve/sse.h"

namespace brisk::serve {
namespace {

TEST(Protocol, CompletionDefaultsAreOpenAIs) {
  auto body = parse_completion_body(R"({"model": "m", "prompt": "Hello", "user": "u-1"})");
  ASSERT_TRUE(body.ok()) << body.error().message;
  const GenerationParams& p = body.value().params;
  EXPECT_EQ(p.model, "m");
  EXPECT_EQ(p.sampling.temperature, 1.0f);
  EXPECT_EQ(p.sampling.top_p, 1.0f);
  EXPECT_EQ(p.sampling.top_k, 0);
  EXPECT_EQ(p.sampling.min_p, 0.0f);
  EXPECT_EQ(p.n, 1);
  EXPECT_FALSE(p.stream);
  EXPECT_EQ(p.top_logprobs, -1);
  ASSERT_EQ(body.value().prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(body.value().prompts[0]), "Hello");
}

// Every request field of OpenAI's API reference (completions, chat completions, embeddings): each
// is honoured, has no effect by definition, or is refused with a 400 naming it unless its value
// asks for nothing. A field outside the reference is refused too.
TEST(Protocol, EveryOpenAiFieldIsHonouredOrRefused) {
  struct Case {
    const char* field;
    const char* asking;  // a value that asks for something brisk does not do ("" = none such)
    const char* inert;   // a value that asks for nothing
  };
  const std::vector<Case> completions = {
      {"echo", "", "true"}, {"best_of", "", "3"}, {"suffix", "\"x\"", "null"},
      {"logit_bias", "", "{\"5\": 10}"}, {"user", "", "\"u\""}, {"frobnicate", "1", nullptr},
      {"response_format", "", "{\"type\": \"json_object\"}"}, {"grammar", "", "\"root ::= [a-z]+\""},
      {"tools", "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", nullptr}};
  const std::vector<Case> chat = {
      {"response_format", "", "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"n\", \"schema\": {\"type\": \"integer\"}}}"},
      {"grammar", "", "\"root ::= [a-z]+\""},
      {"tools", "", "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]"},
      {"tool_choice", "", "\"none\""}, {"parallel_tool_calls", nullptr, "true"},
      {"functions", "[{\"name\": \"f\"}]", "[]"}, {"function_call", "{\"name\": \"f\"}", "\"none\""},
      {"logit_bias", "", "{\"5\": -100, \"7\": 2.5}"}, {"store", "true", "false"}, {"service_tier", "\"flex\"", "\"auto\""},
      {"modalities", "[\"text\", \"audio\"]", "[\"text\"]"}, {"audio", "{\"voice\": \"x\"}", "null"},
      {"prediction", "{\"type\": \"content\", \"content\": \"x\"}", "null"},
      {"reasoning_effort", "\"low\"", "null"}, {"verbosity", "\"low\"", "null"},
      {"web_search_options", "{}", "null"}, {"metadata", "", "{\"k\": \"v\"}"},
      {"prompt_cache_key", "", "\"k\""}, {"safety_identifier", "", "\"s\""}, {"user", "", "\"u\""},
      {"frobnicate", "1", nullptr}};
  auto check = [](const std::vector<Case>& cases, const std::string& base, auto parse) {
    for (const Case& c : cases) {
      if (c.inert) {
        auto ok = parse(base + ", \"" + c.field + "\": " + c.inert + "}");
        EXPECT_TRUE(ok.ok()) << c.field << " = " << c.inert << ": " << ok.error().message;
      }
      if (c.asking && *c.asking) {
        auto refused = parse(base + ", \"" + c.field + "\": " + c.asking + "}");
        ASSERT_FALSE(refused.ok()) << c.field << " = " << c.asking << " was accepted";
        EXPECT_EQ(refused.error().status, 400);
        EXPECT_EQ(refused.error().param, c.field);
      }
    }
  };
  check(completions, R"({"prompt": "x")", [](const std::string& b) { return parse_completion_body(b); });
  check(chat, R"({"messages": [{"role": "user", "content": "x"}])", [](const std::string& b) { return parse_chat_body(b); });
  // logit_bias: token ids as strings, biases within [-100, 100]; read into the sampling parameters.
  auto biased = parse_completion_body(R"({"prompt": "x", "logit_bias": {"5": -100, "7": 2.5}})");
  ASSERT_TRUE(biased.ok());
  EXPECT_EQ(biased.value().params.sampling.logit_bias, (std::vector<std::pair<int32_t, float>>{{5, -100.0f}, {7, 2.5f}}));
  for (const char* bad : {R"({"x": 1})", R"({"5": 101})", R"({"-1": 1})", R"({"5": "a"})", R"([1])"}) {
    auto refused = parse_completion_body(std::string(R"({"prompt": "x", "logit_bias": )") + bad + "}");
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.error().param, "logit_bias");
  }
  // max_tokens 0 scores the prompt: only with echo, only on completions.
  EXPECT_TRUE(parse_completion_body(R"({"prompt": "x", "echo": true, "max_tokens": 0, "logprobs": 1})").ok());
  EXPECT_EQ(parse_completion_body(R"({"prompt": "x", "max_tokens": 0})").error().param, "max_tokens");
  EXPECT_EQ(parse_chat_body(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})").error().param,
            "max_tokens");
  // best_of: at least n, not streamed when above n.
  EXPECT_TRUE(parse_completion_body(R"({"prompt": "x", "n": 3, "best_of": 3, "stream": true})").ok());
  EXPECT_EQ(parse_completion_body(R"({"prompt": "x", "n": 3, "best_of": 2})").error().param, "best_of");
  EXPECT_EQ(parse_completion_body(R"({"prompt": "x", "best_of": 2, "stream": true})").error().param, "best_of");
  // Message fields beyond role, content, name, tool_calls and tool_call_id are refused by name.
  auto refusal = parse_chat_body(R"({"messages": [{"role": "assistant", "content": "x", "refusal": "no"}]})");
  ASSERT_FALSE(refusal.ok());
  EXPECT_EQ(refusal.error().param, "messages[0].refusal");
  EXPECT_TRUE(parse_chat_body(R"({"messages": [{"role": "user", "content": "x", "name": "bob"}]})").ok());
  auto embeddings = parse_embeddings_body(R"({"input": "x", "user": "u", "truncate": true})");
  ASSERT_FALSE(embeddings.ok());
  EXPECT_EQ(embeddings.error().param, "truncate");
}

TEST(Protocol, DeepBodiesAreRefused) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto r = parse_completion_body(R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "n",
      "schema": {"const": )" + deep + "}}}}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status, 400);
  EXPECT_NE(r.error().message.find("nests deeper than"), std::string::npos);
  EXPECT_TRUE(parse_completion_body(R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"name": "n",
      "schema": {"const": [[[1]]]}}}})").ok());
}

TEST(Protocol, CompletionFieldsAreRead) {
  auto body = parse_completion_body(R"({"prompt": [[1, 2, 3], "text"], "max_tokens": 8.0, "temperature": 0,
    "top_p": 0.5, "top_k": 7, "min_p": 0.1, "stop": ["a", "", "b"], "seed": 42, "presence_penalty": 0.5,
    "frequency_penalty": -0.5, "logprobs": 3, "n": 2, "stream": true,
    "stream_options": {"include_usage": true}, "ignore_eos": true})");
  ASSERT_TRUE(body.ok()) << body.error().message;
  const GenerationParams& p = body.value().params;
  EXPECT_EQ(p.max_tokens, 8);
  EXPECT_EQ(p.sampling.temperature, 0.0f);
  EXPECT_EQ(p.sampling.top_p, 0.5f);
  EXPECT_EQ(p.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(p.sampling.min_p, 0.1f);
  EXPECT_EQ(p.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.sampling.seed, 42u);
  EXPECT_EQ(p.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(p.sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(p.top_logprobs, 3);
  EXPECT_EQ(p.n, 2);
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
  EXPECT_TRUE(p.ignore_eos);
  ASSERT_EQ(body.value().prompts.size(), 2u);
  EXPECT_EQ(std::get<std::vector<int32_t>>(body.value().prompts[0]), (std::vector<int32_t>{1, 2, 3}));
}

// "seed": null means no seed: two requests draw different random seeds (it was a fixed seed).
TEST(Protocol, NullSeedIsNoSeed) {
  auto a = parse_completion_body(R"({"prompt": "x", "seed": null})");
  auto b = parse_completion_body(R"({"prompt": "x", "seed": null})");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a.value().params.sampling.seed, b.value().params.sampling.seed);
  auto fixed = parse_completion_body(R"({"prompt": "x", "seed": -1})");
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed.value().params.sampling.seed, uint64_t(-1));  // an explicit seed is kept as given
}

TEST(Protocol, StopMayBeOneString) {
  auto body = parse_completion_body(R"({"prompt": "x", "stop": "\n\n"})");
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(body.value().params.stop, (std::vector<std::string>{"\n\n"}));
}

// Each bad body names the field at fault.
TEST(Protocol, BadCompletionBodiesAre400s) {
  const std::pair<const char*, const char*> cases[] = {
      {"{", ""},
      {"[1, 2]", ""},
      {"", ""},
      {R"({"prompt": ""})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({})", "prompt"},
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": [1, "a"]})", "prompt"},
      {R"({"prompt": [-1]})", "prompt"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": -5})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": "16"})", "max_tokens"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "temperature": 3})", "temperature"},
      {R"({"prompt": "x", "top_p": 1.5})", "top_p"},
      {R"({"prompt": "x", "n": 0})", "n"},
      {R"({"prompt": "x", "n": 1000})", "n"},
      {R"({"prompt": "x", "stream": "yes"})", "stream"},
      {R"({"prompt": "x", "stop": [1]})", "stop"},
      {R"({"prompt": "x", "logprobs": 50})", "logprobs"},
      {R"({"prompt": "x", "model": 3})", "model"},
      {R"({"prompt": "x", "stream_options": []})", "stream_options"},
      {R"({"prompt": "x", "seed": "s"})", "seed"},
  };
  for (const auto& [text, param] : cases) {
    auto body = parse_completion_body(text);
    ASSERT_FALSE(body.ok()) << text;
    EXPECT_EQ(body.error().status, 400) << text;
    EXPECT_EQ(body.error().param, param) << text;
    EXPECT_FALSE(body.error().message.empty());
  }
}

// /v1/embeddings: inputs read as prompts are; wrong types, empty and oversized inputs, truncated and
// deeply nested bodies are 400s naming the field.
TEST(Protocol, EmbeddingsBodies) {
  auto ok = parse_embeddings_body(R"({"model": "m", "input": ["a", [1, 2]], "encoding_format": "base64"})");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->model, "m");
  EXPECT_TRUE(ok->base64);
  ASSERT_EQ(ok->inputs.size(), 2u);
  EXPECT_EQ(std::get<std::string>(ok->inputs[0]), "a");
  EXPECT_EQ(std::get<std::vector<int32_t>>(ok->inputs[1]), (std::vector<int32_t>{1, 2}));
  std::string many = R"({"input": [)";
  for (int i = 0; i < 2049; ++i) many += std::string(i ? "," : "") + "\"x\"";
  many += "]}";
  const std::pair<std::string, std::string> bad[] = {
      {R"({})", "input"},
      {R"({"input": ""})", "input"},
      {R"({"input": []})", "input"},
      {R"({"input": [[]]})", "input"},
      {R"({"input": [-1]})", "input"},
      {R"({"input": [4294967296]})", "input"},
      {R"({"input": [{"a": 1}]})", "input"},
      {R"({"input": "x", "encoding_format": "int8"})", "encoding_format"},
      {R"({"input": "x", "dimensions": -3})", "dimensions"},
      {R"({"input": "x", "dimensions": "8"})", "dimensions"},
      {R"({"input": "x", "model": 7})", "model"},
      {R"({"input": "x")", ""},
      {std::string(100000, '[') + std::string(100000, ']'), ""},
      {many, "input"},
  };
  for (const auto& [body, param] : bad) {
    auto r = parse_embeddings_body(body);
    ASSERT_FALSE(r.ok()) << body.substr(0, 80);
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().param, param) << body.substr(0, 80);
  }
}

TEST(Protocol, ChatBodies) {
  auto body = parse_chat_body(R"({"model": "m", "messages": [{"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
    {"role": "assistant", "content": null}], "logprobs": true, "top_logprobs": 2, "max_completion_tokens": 5})");
  ASSERT_TRUE(body.ok()) << body.error().message;
  ASSERT_EQ(body.value().messages.size(), 3u);
  EXPECT_EQ(body.value().messages[1]["role"], "user");
  EXPECT_EQ(body.value().messages[1]["content"], "Hi there");
  EXPECT_EQ(body.value().messages[2]["content"], "");
  EXPECT_EQ(body.value().params.top_logprobs, 2);
  EXPECT_EQ(body.value().params.max_tokens, 5);

  for (const char* bad : {R"({"messages": []})", R"({"messages": "hi"})", R"({"messages": [{"content": "x"}]})",
                          R"({"messages": [{"role": "user", "content": 5}]})",
                          R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
                          R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3})"}) {
    auto parsed = parse_chat_body(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().status, 400) << bad;
  }
}

TEST(Protocol, RequestsAreCheckedAgainstTheContext) {
  GenerationParams params;
  params.max_tokens = -1;
  auto ok = make_completion_request(params, Endpoint::Completions, {1, 2, 3}, 100, 50);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value().max_new_tokens, 16);  // OpenAI's completions default
  EXPECT_TRUE(ok.value().stop_at_eos);

  auto chat = make_completion_request(params, Endpoint::ChatCompletions, {1, 2, 3}, 100, 50);
  ASSERT_TRUE(chat.ok());
  EXPECT_EQ(chat.value().max_new_tokens, 97);  // the rest of the context

  auto full = make_completion_request(params, Endpoint::Completions, std::vector<int32_t>(100, 1), 100, 50);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, "context_length_exceeded");

  params.max_tokens = 98;
  auto too_many = make_completion_request(params, Endpoint::Completions, {1, 2, 3}, 100, 50);
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.error().param, "max_tokens");
  params.max_tokens = 97;
  EXPECT_TRUE(make_completion_request(params, Endpoint::Completions, {1, 2, 3}, 100, 50).ok());

  auto bad_id = make_completion_request(params, Endpoint::Completions, {1, 50}, 100, 50);
  ASSERT_FALSE(bad_id.ok());
  EXPECT_EQ(bad_id.error().param, "prompt");
  EXPECT_FALSE(make_completion_request(params, Endpoint::Completions, {}, 100, 50).ok());
}

TEST(Protocol, ErrorJsonIsOpenAIShaped) {
  Json j = error_json(invalid_field("max_tokens", "bad"));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "max_tokens");
  EXPECT_TRUE(j["error"]["code"].is_null());
}

TEST(Sse, Framing) {
  EXPECT_EQ(sse_event(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_event("one\ntwo"), "data: one\ndata: two\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
}

TEST(Auth, BearerKey) {
  EXPECT_TRUE(bearer_authorized("", ""));
  EXPECT_TRUE(bearer_authorized("anything", ""));
  EXPECT_TRUE(bearer_authorized("Bearer sk-1", "sk-1"));
  EXPECT_TRUE(bearer_authorized("bearer sk-1", "sk-1"));
  EXPECT_FALSE(bearer_authorized("", "sk-1"));
  EXPECT_FALSE(bearer_authorized("Bearer sk-2", "sk-1"));
  EXPECT_FALSE(bearer_authorized("Bearer sk-1x", "sk-1"));
  EXPECT_FALSE(bearer_authorized("Bearer sk-", "sk-1"));
  EXPECT_FALSE(bearer_authorized("Basic sk-1", "sk-1"));
}

// `--api-key ""` turned authentication off without a word, and a key with a trailing space
// locked every client out; a key may also come from a file or BRISK_API_KEY (out of `ps`).
TEST(Auth, ApiKeySources) {
  const auto error_of = [](const ApiKeySources& sources) {
    auto key = resolve_api_key(sources);
    return key.ok() ? "" : key.error().message;
  };
  EXPECT_EQ(resolve_api_key({}).value(), "");  // nothing given: no authentication
  EXPECT_EQ(resolve_api_key({.flag = "sk-1"}).value(), "sk-1");
  EXPECT_EQ(resolve_api_key({.environment = "sk-env"}).value(), "sk-env");
  EXPECT_EQ(resolve_api_key({.flag = "sk-flag", .environment = "sk-env"}).value(), "sk-flag");
  EXPECT_NE(error_of({.flag = ""}).find("--api-key: the API key is empty"), std::string::npos);
  EXPECT_NE(error_of({.environment = ""}).find("BRISK_API_KEY"), std::string::npos);
  for (const char* bad : {"sk-1 ", " sk-1", "sk 1", "sk-1\t", "sk-1\n", "sk-\x01"}) {
    EXPECT_NE(error_of({.flag = bad}).find("whitespace or a control character"), std::string::npos) << bad;
  }
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("brisk-api-key-" + std::to_string(::getpid()));
  const auto from_file = [&](const std::string& text) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
    return resolve_api_key({.file = file});
  };
  EXPECT_EQ(from_file("sk-file\n").value(), "sk-file");
  EXPECT_EQ(from_file("sk-file\r\n").value(), "sk-file");
  EXPECT_EQ(from_file("sk-file").value(), "sk-file");
  EXPECT_FALSE(from_file("").ok());
  EXPECT_FALSE(from_file("\n").ok());
  EXPECT_FALSE(from_file("sk-file \n").ok());
  EXPECT_NE(from_file("sk-file\n\n").error().message.find(file.string()), std::string::npos);
  std::filesystem::remove(file);
  EXPECT_NE(error_of({.file = file}).find("cannot read"), std::string::npos);
  EXPECT_NE(error_of({.flag = "a", .file = file}).find("not both"), std::string::npos);
}

TEST(Metrics, PrometheusText) {
  Metrics metrics;
  metrics.count_request("completions", 200);
  metrics.count_request("completions", 200);
  metrics.count_request("chat_completions", 400);
  metrics.count_tokens(10, 20);
  metrics.observe_time_to_first_token(0.02);
  metrics.observe_inter_token(0.01, 2);  // two tokens, 5 ms apart each
  SchedulerStats stats;
  stats.queued = 3;
  stats.running = 5;
  stats.kv_blocks_used = 7;
  stats.kv_blocks_free = 9;
  const std::string text = metrics.render(stats, {3, 1});
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("brisk_requests_total{endpoint=\"completions\",status=\"200\"} 2")) << text;
  EXPECT_TRUE(has("brisk_requests_total{endpoint=\"chat_completions\",status=\"400\"} 1"));
  EXPECT_TRUE(has("brisk_prompt_tokens_total 10"));
  EXPECT_TRUE(has("brisk_generation_tokens_total 20"));
  EXPECT_TRUE(has("brisk_time_to_first_token_seconds_bucket{le=\"0.01\"} 0"));
  EXPECT_TRUE(has("brisk_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"));
  EXPECT_TRUE(has("brisk_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has("brisk_inter_token_latency_seconds_bucket{le=\"0.005\"} 2"));
  EXPECT_TRUE(has("brisk_inter_token_latency_seconds_count 2"));
  EXPECT_TRUE(has("brisk_queue_depth 3"));
  EXPECT_TRUE(has("brisk_running_batch 5"));
  EXPECT_TRUE(has("brisk_kv_blocks_used 7"));
  EXPECT_TRUE(has("brisk_kv_blocks_free 9"));
  EXPECT_TRUE(has("brisk_http_connections 3"));
  EXPECT_TRUE(has("brisk_http_requests_in_progress 1"));
  // Every non-comment line is "name{labels} value" or "name value".
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    char* rest = nullptr;
    std::strtod(line.c_str() + space + 1, &rest);
    EXPECT_EQ(*rest, '\0') << line;
  }
}

// Random and mutated bodies: the parsers return a value or a 400, never crash or throw.
TEST(Fuzz, ParsersSurviveAnyBody) {
  const std::vector<std::string> seeds = {
      R"({"model": "m", "prompt": "Hello", "max_tokens": 5, "stop": ["x"], "logprobs": 2, "n": 2})",
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "stream": true,
          "stream_options": {"include_usage": true}, "top_logprobs": 1, "logprobs": true})",
      R"({"prompt": [[1,2],[3]], "temperature": 0.5, "seed": -3})",
      R"({"model": "m", "input": ["a", [1, 2]], "encoding_format": "base64", "dimensions": 8})",
  };
  const std::string alphabet = "{}[]\":,0123456789.eE+-truefalsnl \\u00\xff\x80\n\tabc";
  std::mt19937 rng(1234);
  auto check = [](const std::string& body) {
    auto a = parse_completion_body(body);
    if (!a.ok()) {
      EXPECT_GE(a.error().status, 400);
    }
    auto b = parse_chat_body(body);
    if (!b.ok()) {
      EXPECT_GE(b.error().status, 400);
    }
    auto e = parse_embeddings_body(body);
    if (!e.ok()) {
      EXPECT_GE(e.error().status, 400);
    }
  };
  for (int iter = 0; iter < 20000; ++iter) {
    std::string body = seeds[rng() % seeds.size()];
    const int edits = 1 + int(rng() % 8);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 4) {
        case 0: body[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: body.erase(at, 1 + rng() % 4); break;
        case 2: body.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        case 3: body.insert(at, body.substr(rng() % body.size(), rng() % 16)); break;
      }
    }
    check(body);
  }
  for (int iter = 0; iter < 2000; ++iter) {
    std::string body(rng() % 64, '\0');
    for (char& c : body) c = char(rng());
    check(body);
  }
  // Deep nesting and odd numbers.
  check(std::string(100000, '[') + std::string(100000, ']'));
  check(R"({"prompt": ")" + std::string(100000, '{') + R"("})");
  check(R"({"prompt": "x", "max_tokens": 1e999, "temperature": -0.0, "n": 18446744073709551615})");
  check(R"({"prompt": [2147483648]})");
  check(R"({"messages": [{"role": "user", "content": "\ud800"}]})");
}

}  // namespace
}  // namespace brisk::serve
