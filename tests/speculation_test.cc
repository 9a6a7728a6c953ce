// Speculative decoding (runtime/speculation.h) in Engine::generate on the shared models (CPU):
// with prompt lookup, with the model as its own draft and with sotu-qwen2 drafting for sotu-llama
// (the two share a tokenizer), the output is token for token the output without speculation,
// greedy and sampled (temperature, top-k, top-p, min-p, repetition penalty), through stop strings
// and the end of the context; a draft that drafts with the model's own logits is always accepted.
#include "runtime/speculation.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "runtime/engine.h"

namespace brisk {
namespace {

const std::filesystem::path kModels = std::filesystem::path(BRISK_SHARED_DIR) / "models";

std::unique_ptr<Engine> open(const std::string& name, int64_t context = 512) {
  EngineOptions options;
  options.model_dir = kModels / name;
  options.backend.threads = 2;
  options.context = context;
  auto engine = Engine::open(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return std::move(engine).value();
}

struct Sampling {
  const char* name;
  SamplingParams params;
};

std::vector<Sampling> samplings() {
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  SamplingParams topk;
  topk.temperature = 0.9f;
  topk.top_k = 20;
  topk.top_p = 1.0f;
  topk.min_p = 0.0f;
  topk.seed = 7;
  SamplingParams topp;
  topp.temperature = 1.3f;
  topp.top_k = 0;
  topp.top_p = 0.8f;
  topp.min_p = 0.02f;
  topp.repetition_penalty = 1.3f;
  topp.seed = 11;
  return {{"greedy", greedy}, {"top-k", topk}, {"top-p + penalty", topp}};
}

GenerateRequest request(const std::string& prompt, const SamplingParams& sampling, int64_t n) {
  GenerateRequest r;
  r.prompt = prompt;
  r.max_new_tokens = n;
  r.sampling = sampling;
  r.stop_at_eos = false;
  r.max_draft = 4;
  return r;
}

const std::string kPrompt =
    "The President said that the Congress must act to protect the nation. The President said that";

// Each draft source on `target` against plain decoding: the same ids for every sampling setting.
void expect_same_output(Engine& target, DraftSource& source, const std::string& what, double min_acceptance = 0) {
  for (const Sampling& s : samplings()) {
    GenerateRequest plain = request(kPrompt, s.params, 48);
    auto want = target.generate(plain);
    ASSERT_TRUE(want.ok()) << want.error().message;
    GenerateRequest speculative = plain;
    speculative.draft = &source;
    auto got = target.generate(speculative);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(got->ids, want->ids) << what << ", " << s.name;
    EXPECT_EQ(got->text, want->text) << what << ", " << s.name;
    EXPECT_GT(got->speculation.steps, 0) << what;
    EXPECT_GE(got->speculation.acceptance_rate(), min_acceptance) << what << ", " << s.name;
  }
}

TEST(Speculation, PromptLookupKeepsTheOutput) {
  for (const char* name : {"sotu-llama", "sotu-qwen2", "sotu-gpt2"}) {
    auto target = open(name);
    PromptLookup lookup(3);
    expect_same_output(*target, lookup, std::string(name) + " lookup");
  }
}

TEST(Speculation, TheModelAsItsOwnDraftIsAlwaysAccepted) {
  // The draft draws with the model's noise from the model's logits: every proposal is what the
  // model draws, sampled too (the coupling).
  for (const char* name : {"sotu-llama", "sotu-gpt2"}) {
    auto target = open(name), copy = open(name);
    auto draft = DraftModel::attach(*copy, *target);
    ASSERT_TRUE(draft.ok()) << draft.error().message;
    expect_same_output(*target, *draft.value(), std::string(name) + " self-draft", 1.0);
  }
}

TEST(Speculation, ASmallerModelDraftsForALargerOne) {
  auto target = open("sotu-llama"), small = open("sotu-qwen2");
  auto draft = DraftModel::attach(*small, *target);
  ASSERT_TRUE(draft.ok()) << draft.error().message;
  expect_same_output(*target, *draft.value(), "qwen2 drafting for llama", 0.2);
}

TEST(Speculation, StopStringsAndTheContextEndAsWithout) {
  auto target = open("sotu-llama", 80), copy = open("sotu-llama", 80);
  auto draft = DraftModel::attach(*copy, *target);
  ASSERT_TRUE(draft.ok());
  for (const Sampling& s : samplings()) {
    GenerateRequest plain = request(kPrompt, s.params, 200);  // past the context of 80
    plain.stop = {" of the"};
    for (bool with_stop : {true, false}) {
      if (!with_stop) plain.stop.clear();
      auto want = target->generate(plain);
      ASSERT_TRUE(want.ok());
      GenerateRequest speculative = plain;
      speculative.draft = draft.value().get();
      auto got = target->generate(speculative);
      ASSERT_TRUE(got.ok());
      EXPECT_EQ(got->ids, want->ids) << s.name;
      EXPECT_EQ(got->text, want->text) << s.name;
      EXPECT_EQ(got->reason, want->reason) << s.name;
    }
  }
}

TEST(Speculation, ADraftWithAnotherTokenizerIsRefused) {
  auto target = open("sotu-llama"), other = open("sotu-gpt2");
  auto draft = DraftModel::attach(*other, *target);
  ASSERT_FALSE(draft.ok());
  EXPECT_NE(draft.error().message.find("a draft must share the model's tokenizer"), std::string::npos)
      << draft.error().message;
}

TEST(Speculation, PromptLookupProposesWhatFollowedTheLatestMatch) {
  PromptLookup lookup(2);
  Sampler unused(SamplingParams{}, 100);
  // "7 8" occurred twice before; the latest is followed by 9 10 11.
  const std::vector<int32_t> sequence = {7, 8, 1, 2, 7, 8, 9, 10, 11, 3, 7, 8};
  EXPECT_EQ(lookup.propose(sequence, 2, unused), (std::vector<int32_t>{9, 10}));
  EXPECT_EQ(lookup.propose(sequence, 9, unused), (std::vector<int32_t>{9, 10, 11, 3, 7, 8}));
  // No 2-gram match: the last token alone (5 was followed by 6).
  EXPECT_EQ(lookup.propose({5, 6, 4, 5}, 3, unused), (std::vector<int32_t>{6, 4, 5}));
  EXPECT_TRUE(lookup.propose({1, 2, 3}, 3, unused).empty());
}

}  // namespace
}  // namespace brisk
