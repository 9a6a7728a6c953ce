// The scheduler on a real model (sotu-llama, CPU): batched greedy decoding gives every request
// the tokens it gets alone, also when KV memory runs out and sequences are preempted; prefix
// blocks are shared; cancellation and bad requests end cleanly.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "formats/safetensors.h"
#include "greedy_requests.h"
#include "ops/reference.h"
#include "runtime/kv_blocks.h"
#include "runtime/perplexity.h"

namespace brisk {
namespace {

using namespace greedy_requests;

const std::string kModels = std::string(BRISK_SHARED_DIR) + "/models/";

// A shared model with this context and KV memory (kv_bytes, else kv_tokens positions).
std::unique_ptr<Engine> open_model(const std::string& name, int64_t context, int64_t kv_bytes = 0,
                                   int64_t kv_tokens = 0) {
  EngineOptions options;
  options.model_dir = kModels + name;
  options.backend.threads = 2;
  options.context = context;
  options.kv_bytes = kv_bytes;
  options.kv_tokens = kv_tokens;
  auto engine = Engine::open(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return std::move(engine).value();
}

std::unique_ptr<Engine> open_engine(int64_t context, int64_t kv_bytes = 0) {
  return open_model("sotu-llama", context, kv_bytes);
}

// Six sequences of ~8 + 40 tokens, at most `max_batch` at once, on exactly one context of KV
// memory (64 tokens, four blocks): every request gets its solo tokens although sequences are
// preempted.
void expect_preemption_keeps_results(SchedulerOptions options) {
  auto sized = open_engine(64);
  const ModelConfig& c = sized->model().config();
  auto engine = open_engine(64, int64_t(KvCache::bytes_per_block(c.n_layers, c.n_kv_heads, c.head_dim, KvDtype::F32)) * 4);
  options.max_batch = 6;
  options.prefill_chunk = 256;
  int64_t preemptions = 0;
  expect_batched_equals_solo(*engine, options, 40, &preemptions);
  EXPECT_GT(preemptions, 0);
}

TEST(Scheduler, BatchedGreedyEqualsSolo) {
  auto engine = open_engine(256);
  SchedulerOptions options;
  options.max_batch = 4;  // more requests than slots: some wait in the queue
  options.prefill_chunk = 3;  // prompts arrive over several steps beside running decodes
  expect_batched_equals_solo(*engine, options, 24);
}

TEST(Scheduler, PreemptionKeepsResults) {
  expect_preemption_keeps_results(SchedulerOptions{});
}

// Prompt lookup in the batch (SchedulerOptions::lookup): speculating sequences beside prefilling
// ones, through preemption, give every request its solo tokens; sampled requests get the tokens
// they get without speculation (the same draws).
TEST(Scheduler, SpeculationKeepsEveryRequestsTokens) {
  auto engine = open_engine(256);
  SchedulerOptions options;
  options.max_batch = 4;
  options.prefill_chunk = 3;
  options.lookup = 2;
  options.max_draft = 4;
  options.speculation_max_batch = 64;
  expect_batched_equals_solo(*engine, options, 40);
  expect_preemption_keeps_results(options);

  auto sampled = [&](int64_t lookup, SchedulerStats* stats) {
    SchedulerOptions o;
    o.lookup = lookup;
    o.speculation_max_batch = 64;
    Scheduler scheduler(*engine, o);
    std::vector<Collector> got(kPrompts.size());
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      CompletionRequest r;
      r.prompt = engine->tokenizer().encode(kPrompts[i], AddSpecial::Yes);
      r.max_new_tokens = 40;
      r.sampling.temperature = 0.7f;
      r.sampling.repetition_penalty = 1.1f;
      r.sampling.seed = 100 + i;
      r.stop_at_eos = false;
      EXPECT_EQ(scheduler.submit(r, got[i].sink()).error, SubmitError::None);
    }
    std::vector<std::vector<int32_t>> ids;
    for (Collector& c : got) {
      c.wait();
      ids.push_back(c.ids);
    }
    *stats = scheduler.stats();
    return ids;
  };
  SchedulerStats plain, speculative;
  EXPECT_EQ(sampled(3, &speculative), sampled(0, &plain));
  EXPECT_GT(speculative.speculated_tokens, 0);
  EXPECT_GT(speculative.accepted_tokens, 0);
  EXPECT_EQ(plain.speculated_tokens, 0);
}

// A draft model in the batch (SchedulerOptions::draft; serve --draft): sotu-qwen2 drafting for
// sotu-llama gives every (greedy) request its solo tokens, beside prefills and through
// preemption; with the model as its own draft every proposal is kept; a draft cache too small for
// the batch leaves sequences without proposals, not without their tokens.
TEST(Scheduler, ADraftModelKeepsEveryRequestsTokens) {
  auto engine = open_engine(256);
  auto qwen2 = open_model("sotu-qwen2", 256, 0, 4 * 256);
  auto draft = DraftModel::attach(*qwen2, *engine);
  ASSERT_TRUE(draft.ok()) << draft.error().message;
  SchedulerOptions options;
  options.max_batch = 4;
  options.prefill_chunk = 3;
  options.draft = draft.value().get();
  options.max_draft = 4;
  options.speculation_max_batch = 64;
  SchedulerStats stats;
  expect_batched_equals_solo(*engine, options, 40, nullptr, &stats);
  EXPECT_GT(stats.speculated_tokens, 0);
  EXPECT_GT(stats.accepted_tokens, 0);

  expect_preemption_keeps_results(options);

  // The model drafting for itself: every proposal kept, in a batch.
  auto copy = open_model("sotu-llama", 256, 0, 4 * 256);
  auto self = DraftModel::attach(*copy, *engine);
  ASSERT_TRUE(self.ok());
  options.max_batch = 4;
  options.draft = self.value().get();
  expect_batched_equals_solo(*engine, options, 40, nullptr, &stats);
  EXPECT_GT(stats.speculated_tokens, 0);
  EXPECT_EQ(stats.accepted_tokens, stats.speculated_tokens);

  // A draft cache of one 64-token context for four sequences of ~48: some draft, the rest decode
  // plainly.
  auto cramped = open_model("sotu-qwen2", 64, 0, 64);
  auto tight = DraftModel::attach(*cramped, *engine);
  ASSERT_TRUE(tight.ok());
  options.draft = tight.value().get();
  expect_batched_equals_solo(*engine, options, 40, nullptr, &stats);
  EXPECT_GT(stats.speculated_tokens, 0);
}

TEST(Scheduler, SharedPrefixReusesBlocks) {
  auto engine = open_engine(256);
  const std::string prefix(200, 'a');  // many tokens shared by both prompts
  std::vector<std::vector<int32_t>> want;
  for (const char* tail : {" and then", " or else"}) {
    GenerateRequest r;
    r.prompt = prefix + tail;
    r.max_new_tokens = 8;
    r.sampling = greedy();
    r.stop_at_eos = false;
    want.push_back(engine->generate(r)->ids);
  }
  Scheduler scheduler(*engine, {});
  int i = 0;
  for (const char* tail : {" and then", " or else"}) {
    Collector c;
    CompletionRequest r;
    r.prompt = engine->tokenizer().encode(prefix + tail, AddSpecial::Yes);
    r.max_new_tokens = 8;
    r.sampling = greedy();
    r.stop_at_eos = false;
    ASSERT_EQ(scheduler.submit(r, c.sink()).error, SubmitError::None);
    c.wait();
    EXPECT_EQ(c.ids, want[size_t(i++)]);
  }
  EXPECT_GT(scheduler.stats().prefix_blocks_reused, 0);
}

TEST(Scheduler, CancelEndsTheRequest) {
  auto engine = open_engine(1024);
  Scheduler scheduler(*engine, {});
  Collector c;
  CompletionRequest r;
  r.prompt = engine->tokenizer().encode("Tonight", AddSpecial::Yes);
  r.max_new_tokens = 1000;
  r.stop_at_eos = false;
  const SubmitResult s = scheduler.submit(r, c.sink());
  ASSERT_EQ(s.error, SubmitError::None);
  scheduler.cancel(s.id);
  c.wait();
  EXPECT_EQ(c.error, "cancelled");
  EXPECT_LT(c.ids.size(), 1000u);
  EXPECT_EQ(scheduler.stats().kv_blocks_used, 0);
}

TEST(Scheduler, RejectsBadRequests) {
  auto engine = open_engine(64);
  SchedulerOptions options;
  options.max_queue = 0;
  Scheduler scheduler(*engine, options);
  CompletionRequest r;
  EXPECT_EQ(scheduler.submit(r, {}).error, SubmitError::BadRequest);  // empty prompt
  r.prompt.assign(64, 5);
  EXPECT_EQ(scheduler.submit(r, {}).error, SubmitError::PromptTooLong);
  r.prompt.assign(3, 5);
  r.max_new_tokens = 0;
  EXPECT_EQ(scheduler.submit(r, {}).error, SubmitError::BadRequest);
  r.max_new_tokens = 4;
  r.prompt[1] = 1 << 30;
  EXPECT_EQ(scheduler.submit(r, {}).error, SubmitError::BadRequest);
  r.prompt[1] = 5;
  EXPECT_EQ(scheduler.submit(r, {}).error, SubmitError::QueueFull);
}

TEST(KvBlocks, PrefixCacheEvictsOnlyIdleBlocks) {
  KvBlocks blocks(2);
  const int32_t tokens[16] = {};
  const uint64_t h = KvBlocks::chain_hash(0, tokens, 16);
  const int32_t a = *blocks.allocate();
  blocks.publish(a, h);
  blocks.release(a);
  EXPECT_EQ(blocks.available(), 2);  // cached but idle counts as available
  EXPECT_EQ(*blocks.lookup(h), a);   // taken back from the cache
  EXPECT_EQ(blocks.available(), 1);
  const int32_t b = *blocks.allocate();
  EXPECT_NE(a, b);
  EXPECT_FALSE(blocks.allocate().has_value());
  blocks.release(a);
  EXPECT_EQ(*blocks.allocate(), a);  // evicted from the cache for reuse
  EXPECT_FALSE(blocks.lookup(h).has_value());
}

// The bundled tiny model with its final norm set to NaN, so that every logit is NaN. Such rows
// once became token 0 (the argmax of a NaN row) with stop reason "eos", and perplexity printed
// "ppl: null" as a success.
class NanModel : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace fs = std::filesystem;
    const fs::path source = fs::path(BRISK_SOURCE_DIR) / "models" / "sotu-tiny";
    dir_ = fs::temp_directory_path() / ("brisk-nan-model-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& entry : fs::directory_iterator(source))
      if (entry.path().filename() != "model.safetensors")
        fs::copy_file(entry.path(), dir_ / entry.path().filename());
    auto weights = SafetensorsFile::open(source / "model.safetensors");
    ASSERT_TRUE(weights.ok());
    std::vector<NamedTensor> tensors = weights.value().tensors();
    for (NamedTensor& t : tensors) {
      if (t.name != "model.norm.weight") continue;
      nan_norm_.assign(size_t(t.tensor.numel()), std::nanf(""));
      t.tensor = Tensor{nan_norm_.data(), DType::F32, t.tensor.shape};
    }
    ASSERT_TRUE(write_safetensors(dir_ / "model.safetensors", tensors).ok());
    EngineOptions options;
    options.model_dir = dir_;
    options.backend.threads = 2;
    options.context = 128;
    auto engine = Engine::open(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message;
    engine_ = std::move(engine).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::vector<float> nan_norm_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(NanModel, GenerateFails) {
  for (const float temperature : {0.0f, 0.8f}) {  // argmax_rows and sample_rows
    GenerateRequest r;
    r.prompt = "The state of the union";
    r.max_new_tokens = 4;
    r.sampling.temperature = temperature;
    auto result = engine_->generate(r);
    ASSERT_FALSE(result.ok()) << "temperature " << temperature << " gave " << result.value().ids.size()
                              << " tokens";
    EXPECT_NE(result.error().message.find("non-finite logits"), std::string::npos) << result.error().message;
  }
}

TEST_F(NanModel, SchedulerRequestsEndWithAnError) {
  Scheduler scheduler(*engine_, SchedulerOptions{});
  for (const int32_t top_logprobs : {-1, 2}) {  // tokens chosen on the device, and on the host
    CompletionRequest request;
    request.prompt = {1, 2, 3};
    request.max_new_tokens = 4;
    request.sampling = greedy();
    request.top_logprobs = top_logprobs;
    Collector c;
    ASSERT_EQ(scheduler.submit(request, c.sink()).error, SubmitError::None);
    c.wait();
    EXPECT_TRUE(c.ids.empty());
    EXPECT_NE(c.error.find("non-finite logits"), std::string::npos) << c.error;
  }
  scheduler.shutdown(Scheduler::Drain::Finish);
}

TEST_F(NanModel, PerplexityFails) {
  const std::vector<int32_t> tokens(64, 5);
  auto result = perplexity(*engine_, tokens, 32);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message.find("non-finite logits"), std::string::npos) << result.error().message;
}

TEST(ArgmaxRow, NonFiniteRowsAnswerTheSentinel) {
  const float inf = INFINITY, nan = std::nanf("");
  EXPECT_EQ(ref::argmax_row(std::vector<float>{1, 3, 3, 2}.data(), 4), 1);  // the first maximum
  EXPECT_EQ(ref::argmax_row(std::vector<float>{-inf, 0, -inf}.data(), 3), 1);
  EXPECT_EQ(ref::argmax_row(std::vector<float>{1, nan, 2}.data(), 3), kNonFiniteLogits);
  EXPECT_EQ(ref::argmax_row(std::vector<float>{1, inf, 2}.data(), 3), kNonFiniteLogits);
  EXPECT_EQ(ref::argmax_row(std::vector<float>{-inf, -inf}.data(), 2), kNonFiniteLogits);
}

}  // namespace
}  // namespace brisk
