// The scheduler on a real model (sotu-llama, CPU): batched greedy decoding gives every request
// the tokens it gets alone, also when KV memory runs out and sequences are preempted; prefix
// blocks are shared; cancellation and bad requests end cleanly.
#include <gtest/gtest.h>

#include "greedy_requests.h"
#include "runtime/kv_blocks.h"
#include "runtime/scheduler.h"

namespace brisk {
namespace {

using namespace greedy_requests;

const std::string kModel = std::string(BRISK_SHARED_DIR) + "/models/sotu-llama";

std::unique_ptr<Engine> open_engine(int64_t context, int64_t kv_bytes = 0) {
  EngineOptions options;
  options.model_dir = kModel;
  options.backend.threads = 2;
  options.context = context;
  options.kv_bytes = kv_bytes;
  auto engine = Engine::open(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return std::move(engine).value();
}

TEST(Scheduler, BatchedGreedyEqualsSolo) {
  auto engine = open_engine(256);
  SchedulerOptions options;
  options.max_batch = 4;  // more requests than slots: some wait in the queue
  options.prefill_chunk = 3;  // prompts arrive over several steps beside running decodes
  expect_batched_equals_solo(*engine, options, 24);
}

TEST(Scheduler, PreemptionKeepsResults) {
  // Exactly one context of KV memory (64 tokens) for six sequences of ~8 + 40 tokens.
  auto engine = open_engine(64);
  const ModelConfig& c = engine->model().config();
  const int64_t kv_bytes = int64_t(KvCache::bytes_per_block(c.n_layers, c.n_kv_heads, c.head_dim, KvDtype::F32)) * 4;
  engine = open_engine(64, kv_bytes);
  SchedulerOptions options;
  options.max_batch = 6;
  int64_t preemptions = 0;
  expect_batched_equals_solo(*engine, options, 40, &preemptions);
  EXPECT_GT(preemptions, 0);
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

}  // namespace
}  // namespace brisk
