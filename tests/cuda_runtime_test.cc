// The runtime on the CUDA backend with a real model (sotu-llama): batched greedy decoding gives
// every sequence the tokens it gets alone -- through the scheduler (paged attention over many
// block tables) and through the token runner (device argmax and sampling, recorded decode
// steps replayed as CUDA graphs); and the BERT fixture's embeddings and logits on the GPU. Skips
// without a GPU or without the model. The model folder is $BRISK_MODELS/sotu-llama when set (the
// GPU machine gets models carried in), else ../shared.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bert_golden.h"
#include "greedy_requests.h"
#include "grammar/json_schema.h"
#include "runtime/scheduler.h"

namespace brisk {
namespace {

using namespace greedy_requests;

std::string model_dir() {
  const char* carried = std::getenv("BRISK_MODELS");
  return (carried ? std::string(carried) : std::string(BRISK_SHARED_DIR) + "/models") + "/sotu-llama";
}

// The engine on `device` (the GPU by default), or why the test cannot run.
std::unique_ptr<Engine> open_cuda_engine(int64_t context, DecodeGraphs graphs, std::string* why,
                                         const std::string& device = "cuda") {
  if (!std::filesystem::exists(model_dir())) {
    *why = "no model at " + model_dir();
    return nullptr;
  }
  EngineOptions options;
  options.model_dir = model_dir();
  options.backend.device = device;
  options.context = context;
  options.decode_graphs = graphs;
  options.max_rows = 64;
  auto engine = Engine::open(options);
  if (!engine.ok()) {
    *why = engine.error().message;
    return nullptr;
  }
  return std::move(engine).value();
}

constexpr int64_t kNew = 24;

class CudaRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    solo_engine_ = open_cuda_engine(256, DecodeGraphs::Off, &why);
    if (!solo_engine_) GTEST_SKIP() << why;
    want_ = solo_results(*solo_engine_, kNew);  // one op launch at a time, no recorded graphs
  }
  std::unique_ptr<Engine> solo_engine_;
  std::vector<std::vector<int32_t>> want_;
};

TEST_F(CudaRuntime, SchedulerBatchedGreedyEqualsSolo) {
  SchedulerOptions options;
  options.max_batch = 4;      // more requests than slots: some wait in the queue
  options.prefill_chunk = 3;  // prompts arrive over several steps beside running decodes
  expect_batched_equals_solo(*solo_engine_, options, kNew);
}

// All prompts decode together, each with its own (scattered) blocks, through recorded graphs.
TEST_F(CudaRuntime, RecordedBatchedDecodeEqualsSolo) {
  std::string why;
  auto engine = open_cuda_engine(512, DecodeGraphs::Auto, &why);  // 32 blocks: 5 each
  ASSERT_TRUE(engine) << why;
  const size_t n = kPrompts.size();
  std::vector<std::vector<int32_t>> tokens(n), tables(n), got(n);
  // Sequence i owns blocks i, i + n, i + 2n, ...: interleaved, never contiguous.
  const int64_t blocks_each = KvCache::blocks_for(512);
  ASSERT_GE(engine->cache().n_blocks(), blocks_each);
  for (size_t i = 0; i < n; ++i) {
    tokens[i] = engine->tokenizer().encode(kPrompts[i], AddSpecial::Yes);
    for (int64_t b = 0; b < blocks_each / int64_t(n); ++b) tables[i].push_back(int32_t(size_t(b) * n + i));
  }
  std::vector<SequenceChunk> chunks;
  for (size_t i = 0; i < n; ++i)  // the prompts as one batch of chunks
    chunks.push_back({tokens[i].data(), int64_t(tokens[i].size()), 0, tables[i].data(),
                      int64_t(tables[i].size()), LogitRows::Last});
  const int32_t* ids = engine->forward_greedy(chunks);
  for (size_t i = 0; i < n; ++i) tokens[i].push_back(ids[i]), got[i].push_back(ids[i]);
  for (int64_t step = 1; step < kNew; ++step) {
    chunks.clear();
    for (size_t i = 0; i < n; ++i)
      chunks.push_back({&tokens[i].back(), 1, int64_t(tokens[i].size()) - 1, tables[i].data(),
                        int64_t(tables[i].size()), LogitRows::Last});
    ids = engine->forward_greedy(chunks);
    for (size_t i = 0; i < n; ++i) tokens[i].push_back(ids[i]), got[i].push_back(ids[i]);
  }
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(got[i], want_[i]) << "sequence " << i << ": " << kPrompts[i];
  EXPECT_GE(engine->token_runner().recordings_made(), 1);
  EXPECT_GE(engine->token_runner().replays(), kNew - 3);

  // And one sequence alone through recorded steps (generate's greedy path).
  GenerateRequest r;
  r.prompt = kPrompts[0];
  r.max_new_tokens = kNew;
  r.sampling = greedy();
  r.stop_at_eos = false;
  auto alone = engine->generate(r);
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->ids, want_[0]);
}

// Sampling on the device (Backend::sample_rows, penalties included): recorded and launched steps
// draw the same tokens, and the CPU engine (the host reference) the same ones up to float rounding
// near a boundary -- so the shared prefix is reported and only its start is required.
TEST_F(CudaRuntime, SampledGenerateAgreesAcrossGraphsAndTheCpu) {
  std::string why;
  auto recorded = open_cuda_engine(256, DecodeGraphs::Auto, &why);
  ASSERT_TRUE(recorded) << why;
  auto cpu = open_cuda_engine(256, DecodeGraphs::Auto, &why, "cpu");  // the host reference
  ASSERT_TRUE(cpu) << why;
  GenerateRequest r;
  r.prompt = kPrompts[0];
  r.max_new_tokens = kNew;
  r.stop_at_eos = false;
  r.sampling.temperature = 0.8f;
  r.sampling.top_k = 40;
  r.sampling.top_p = 0.9f;
  r.sampling.min_p = 0.02f;
  r.sampling.repetition_penalty = 1.1f;
  r.sampling.presence_penalty = 0.2f;
  r.sampling.seed = 7;
  auto launched = solo_engine_->generate(r);
  auto replayed = recorded->generate(r);
  auto host = cpu->generate(r);
  ASSERT_TRUE(launched.ok() && replayed.ok() && host.ok());
  EXPECT_EQ(replayed->ids, launched->ids);
  EXPECT_GE(recorded->token_runner().replays(), 1);
  size_t shared = 0;
  while (shared < host->ids.size() && shared < launched->ids.size() && host->ids[shared] == launched->ids[shared])
    ++shared;
  std::printf("[cuda-err] sampled generate: cpu and cuda agree on the first %zu of %zu tokens\n", shared,
              launched->ids.size());
  EXPECT_GE(shared, 8u);
}

// Constrained decoding on the device: the host computes each row's mask and sample_rows applies it
// (step 0 of ops/sampling.h); the output is the schema's JSON, equal with and without recorded
// steps, and the CPU engine (host mask, host draw) agrees on a prefix as plain sampling does.
TEST_F(CudaRuntime, GrammarConstrainedGenerateAgreesAcrossGraphsAndTheCpu) {
  std::string why;
  auto recorded = open_cuda_engine(256, DecodeGraphs::Auto, &why);
  ASSERT_TRUE(recorded) << why;
  auto cpu = open_cuda_engine(256, DecodeGraphs::Auto, &why, "cpu");  // the host reference
  ASSERT_TRUE(cpu) << why;
  auto gbnf = grammar::json_schema_gbnf(nlohmann::ordered_json::parse(
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},"n":{"type":"integer"},
          "ok":{"type":"boolean"}},"required":["name","n","ok"],"additionalProperties":false})"));
  ASSERT_TRUE(gbnf.ok()) << gbnf.error().message;
  std::vector<std::vector<int32_t>> ids;
  for (Engine* engine : {solo_engine_.get(), recorded.get(), cpu.get()}) {
    GenerateRequest r;
    r.prompt = kPrompts[0];
    r.max_new_tokens = 120;
    r.sampling.temperature = 0.7f;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0.0f;
    r.sampling.seed = 11;
    auto bound = engine->grammars().get(gbnf.value());
    ASSERT_TRUE(bound.ok()) << bound.error().message;
    r.sampling.grammar = bound.value();
    auto out = engine->generate(r);
    ASSERT_TRUE(out.ok()) << out.error().message;
    ASSERT_EQ(out->reason, StopReason::Grammar) << out->text;
    const nlohmann::json value = nlohmann::json::parse(out->text, nullptr, false);
    ASSERT_TRUE(value.is_object()) << out->text;
    EXPECT_TRUE(value["name"].is_string() && value["n"].is_number_integer() && value["ok"].is_boolean()) << out->text;
    ids.push_back(out->ids);
  }
  EXPECT_EQ(ids[1], ids[0]);
  size_t shared = 0;
  while (shared < ids[2].size() && shared < ids[0].size() && ids[2][shared] == ids[0][shared]) ++shared;
  std::printf("[cuda-err] grammar generate: cpu and cuda agree on the first %zu of %zu tokens\n", shared, ids[0].size());
  EXPECT_GE(shared, 4u);
}

TEST(CudaEncoder, BertMatchesTransformers) {
  BackendOptions gpu;
  gpu.device = "cuda";
  if (auto backend = make_backend(gpu); !backend.ok()) GTEST_SKIP() << backend.error().message;
  bert_golden::check_bert_golden("cuda");
}

}  // namespace
}  // namespace brisk
