// The engine on the bundled model (models/sotu-tiny, so no file outside the repo): generate()
// keeps the previous call's keys and values and a prompt that extends it (the next chat turn)
// runs only its new tokens, with the tokens a fresh engine gives; generation_config.json's
// sampling and end-of-turn ids, and its errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime/engine.h"
#include "runtime/generation_config.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kTiny = fs::path(BRISK_SOURCE_DIR) / "models" / "sotu-tiny";

std::unique_ptr<Engine> open_tiny() {
  EngineOptions options;
  options.model_dir = kTiny;
  options.backend.threads = 2;
  options.context = 512;
  auto engine = Engine::open(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return engine.ok() ? std::move(engine).value() : nullptr;
}

GenerateRequest greedy(const std::string& prompt, int64_t n) {
  GenerateRequest r;
  r.prompt = prompt;
  r.max_new_tokens = n;
  r.sampling.temperature = 0;
  r.stop_at_eos = false;
  return r;
}

TEST(Engine, GenerateReusesThePreviousTurn) {
  auto engine = open_tiny(), fresh = open_tiny();
  ASSERT_TRUE(engine && fresh);
  auto first = engine->generate(greedy("The State of the Union is", 24));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->reused_tokens, 0);
  const std::string next = "The State of the Union is" + first->text + " Congress";
  auto second = engine->generate(greedy(next, 24));
  ASSERT_TRUE(second.ok()) << second.error().message;
  // The first prompt and all but the last generated token were in the cache (re-tokenizing the
  // joined text may split the seam differently, so at least the first prompt's tokens).
  EXPECT_GE(second->reused_tokens, first->prompt_tokens);
  EXPECT_LT(second->reused_tokens, second->prompt_tokens);
  auto alone = fresh->generate(greedy(next, 24));
  ASSERT_TRUE(alone.ok()) << alone.error().message;
  EXPECT_EQ(alone->reused_tokens, 0);
  EXPECT_EQ(second->ids, alone->ids);
  // Anyone else writing the cache (a scheduler, perplexity) makes the engine forget it.
  engine->cache();
  auto third = engine->generate(greedy(next, 24));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->reused_tokens, 0);
  EXPECT_EQ(third->ids, alone->ids);
  // A prompt that diverges early reuses only the common part.
  auto other = engine->generate(greedy("The State of the economy", 8));
  ASSERT_TRUE(other.ok());
  EXPECT_LT(other->reused_tokens, third->prompt_tokens);
}

TEST(GenerationConfig, BundledModelAndErrors) {
  auto g = read_generation_config(kTiny);
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->eos_ids, (std::vector<int32_t>{0, 2}));  // <|endoftext|> and <|im_end|>
  const SamplingParams s = g->apply({});
  EXPECT_FLOAT_EQ(s.temperature, 0.8f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.1f);
  EXPECT_EQ(g->fields_set(), "do_sample, temperature, top_p, repetition_penalty");
  auto engine = open_tiny();
  ASSERT_TRUE(engine);
  EXPECT_TRUE(engine->is_eos(2));

  const fs::path dir = fs::temp_directory_path() / ("brisk-genconfig-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto with = [&](const std::string& body) {
    std::ofstream(dir / "generation_config.json") << body;
    return read_generation_config(dir);
  };
  auto greedy_file = with(R"({"do_sample": false, "temperature": 0.6, "top_k": 0})");
  ASSERT_TRUE(greedy_file.ok()) << greedy_file.error().message;
  EXPECT_EQ(greedy_file->apply({}).temperature, 0.0f);
  EXPECT_EQ(greedy_file->apply({}).top_k, 0);
  for (const char* bad : {R"({"temperature": "hot"})", R"({"top_p": 1.5})", R"({"top_k": -1})",
                          R"({"do_sample": "yes"})", R"({"eos_token_id": [1, "x"]})", R"({"eos_token_id": -3})",
                          R"([1, 2])", R"({"temperature": )"}) {
    auto r = with(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("generation_config.json"), std::string::npos) << r.error().message;
  }
  fs::remove_all(dir);
  EXPECT_TRUE(read_generation_config(dir).ok());  // no file: nothing set
}

}  // namespace
}  // namespace brisk
