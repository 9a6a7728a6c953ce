// Speculative decoding (runtime/speculation.h) in Engine::generate on the shared models (CPU):
// with prompt lookup, with the model as its own draft and with sotu-qwen2 drafting for sotu-llama
// (the two share a tokenizer), the output is token for token the output without speculation,
// greedy and sampled (temperature, top-k, top-p, min-p, repetition penalty), through stop strings
// and the end of the context; a draft that drafts with the model's own logits is always accepted.
// Underneath: each row of a checking pass is bit for bit its one-row decode step.
#include "runtime/speculation.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <unistd.h>

#include "compress/quantize_model.h"
#include "runtime/engine.h"

namespace brisk {
namespace {

const std::filesystem::path kModels = std::filesystem::path(BRISK_SHARED_DIR) / "models";

// A shared model by name, or a folder; max_rows: rows of one forward pass (0: the default).
std::unique_ptr<Engine> open(const std::filesystem::path& model, int64_t context = 512,
                             Bf16Precision bf16 = Bf16Precision::Exact, int64_t max_rows = 0) {
  EngineOptions options;
  options.model_dir = kModels / model;
  options.backend.threads = 2;
  options.backend.bf16 = bf16;
  options.context = context;
  if (max_rows > 0) options.max_rows = max_rows;
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
  r.speculation_off = SpeculationOff::Never;  // every step speculates: acceptance is then the draft's
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

// A quantized copy of sotu-llama in a temporary folder (the caller removes it).
std::filesystem::path quantized_llama(QuantScheme scheme, const std::string& name) {
  const std::filesystem::path out =
      std::filesystem::temp_directory_path() / ("brisk-spec-" + name + "-" + std::to_string(getpid()));
  std::filesystem::remove_all(out);
  QuantizeModelOptions options;
  options.in = kModels / "sotu-llama";
  options.out = out;
  options.spec.scheme = scheme;
  auto report = quantize_model(options);
  EXPECT_TRUE(report.ok()) << report.error().message;
  return out;
}

// The identity above rests on this: a checking pass of a few rows computes each row's logits bit
// for bit as the one-row decode step at that position would (the same sums in the same order in
// every matmul, attention and norm; ops/backend.h's kDecodeOrderRows), for every row count a
// draft can ask for, with bf16 weights (exact and --bf16-fast) and quantized ones (w8, w4, fp8,
// w8a8, nf4, log2).
TEST(Speculation, EachRowOfACheckingPassIsItsDecodeStep) {
  const std::vector<int32_t> prompt = {1, 400, 23, 977, 5, 61, 2048, 7, 300, 12, 90, 4000};
  const std::vector<int32_t> next = {15, 2600, 8, 111, 93, 700, 3, 1200, 44, 5, 6000, 31, 250, 9, 77, 1000};
  ASSERT_EQ(int64_t(next.size()), kMaxDraft + 1);
  std::vector<std::pair<std::filesystem::path, Bf16Precision>> models;
  for (const char* name : {"sotu-llama", "sotu-qwen2", "sotu-gpt2"})
    for (Bf16Precision bf16 : {Bf16Precision::Exact, Bf16Precision::Fast}) models.push_back({kModels / name, bf16});
  models.push_back({quantized_llama(QuantScheme::W8, "w8"), Bf16Precision::Exact});
  models.push_back({quantized_llama(QuantScheme::W4, "w4"), Bf16Precision::Exact});
  models.push_back({quantized_llama(QuantScheme::FP8, "fp8"), Bf16Precision::Exact});
  models.push_back({quantized_llama(QuantScheme::W8A8, "w8a8"), Bf16Precision::Exact});
  models.push_back({quantized_llama(QuantScheme::NF4, "nf4"), Bf16Precision::Exact});
  models.push_back({quantized_llama(QuantScheme::LOG2, "log2"), Bf16Precision::Exact});
  struct RemoveQuantized {
    const std::vector<std::pair<std::filesystem::path, Bf16Precision>>& models;
    ~RemoveQuantized() {
      for (const auto& m : models)
        if (m.first.parent_path() != kModels) std::filesystem::remove_all(m.first);
    }
  } remove_quantized{models};
  for (const auto& [dir, bf16] : models) {
    const std::string what = dir.filename().string() + (bf16 == Bf16Precision::Fast ? " bf16-fast" : "");
    auto engine = open(dir, 128, bf16);
    const int64_t vocab = engine->model().config().vocab_size, start = int64_t(prompt.size());
    engine->prefill(prompt);
    std::vector<float> steps;
    for (size_t i = 0; i < next.size(); ++i) {
      const float* row = engine->decode_step(next[i], start + int64_t(i));
      steps.insert(steps.end(), row, row + vocab);
    }
    std::vector<int32_t> table(size_t(engine->cache().n_blocks()));
    for (size_t b = 0; b < table.size(); ++b) table[b] = int32_t(b);
    for (int64_t rows = 2; rows <= kMaxDraft + 1; ++rows) {
      const float* pass =
          engine->forward({{next.data(), rows, start, table.data(), int64_t(table.size()), LogitRows::All}});
      for (int64_t r = 0; r < rows; ++r)
        ASSERT_EQ(0, std::memcmp(pass + r * vocab, steps.data() + r * vocab, size_t(vocab) * sizeof(float)))
            << what << ": row " << r << " of " << rows;
    }
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

TEST(Speculation, ADraftRunsWhatItLacksInPassesOfItsRows) {
  // The prompt (~20 tokens) is longer than the draft's passes: its first call runs it in pieces.
  auto target = open("sotu-llama"), small = open("sotu-qwen2", 512, Bf16Precision::Exact, 6);
  auto draft = DraftModel::attach(*small, *target);
  ASSERT_TRUE(draft.ok()) << draft.error().message;
  expect_same_output(*target, *draft.value(), "qwen2 in passes of 6 rows", 0.2);
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

// The off switch on given timings: plain steps first (the rate to beat), then speculation while
// it yields tokens faster (with a few plain probes after each window), and growing plain pauses
// while it measures slower.
TEST(Speculation, ThePaceSwitchesSpeculationOffWhereItIsSlower) {
  auto run = [](double seconds_per_speculative_token, int64_t steps) {
    SpeculationPace pace;
    int64_t speculated = 0;
    for (int64_t i = 0; i < steps; ++i) {
      const bool speculating = pace.speculate();
      speculated += speculating;
      // A plain step: 1 ms for one token; a speculative one: 2 tokens.
      pace.observe(speculating ? 2 * seconds_per_speculative_token : 1e-3, speculating ? 2 : 1, speculating);
    }
    return speculated;
  };
  const int64_t steps = 2000;
  using P = SpeculationPace;
  // Twice as fast: speculating but for the first plain steps and the probes (4 after each 1 + 48).
  const int64_t fast = run(0.5e-3, steps);
  EXPECT_GT(fast, steps * 0.9);
  EXPECT_LT(fast, steps - P::kSamples);
  // Much slower: judged after 1 + 4 steps each time, between pauses of 32, 64, ... 512 steps.
  const int64_t slow = run(2e-3, steps);
  EXPECT_GT(slow, 0);
  EXPECT_LE(slow, 8 * (1 + P::kEarlySteps));
  // A little slower (within the margin): judged after whole windows, then paused.
  const int64_t near = run(0.995e-3, steps);
  EXPECT_GT(near, P::kWindow);
  EXPECT_LE(near, 8 * (1 + P::kWindow));
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
