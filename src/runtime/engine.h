// A model ready to run: weights, tokenizer, backend, one sequence's KV cache, and the
// prefill/decode loop with sampling and stop conditions.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/sequence_output.h"
#include "models/model.h"
#include "ops/communicator.h"
#include "runtime/device.h"
#include "runtime/generation_config.h"
#include "runtime/grammar_cache.h"
#include "runtime/sampler.h"
#include "runtime/speculation.h"
#include "runtime/token_runner.h"
#include "tokenizer/tokenizer.h"

namespace brisk {

struct EngineOptions {
  std::filesystem::path model_dir;
  BackendOptions backend;
  int64_t max_rows = 512;   // prefill chunk: tokens per forward call
  int64_t context = 0;      // 0: min(model maximum, kDefaultContext)
  int64_t kv_bytes = 0;     // KV cache memory (--kv-mem); 0: kv_tokens positions
  int64_t kv_tokens = 0;    // used when kv_bytes is 0; at least one sequence of the full context
  // The cache's element type (--kv-dtype). fp32 on every device: logits then equal an fp32
  // reference; bf16/int8/fp8 trade a little accuracy for 2-4x the positions in the same bytes.
  std::optional<KvDtype> kv_dtype;  // nullopt: the model's (config.json brisk_kv_dtype), else f32
  DecodeGraphs decode_graphs = DecodeGraphs::Auto;  // --no-graphs: launch every op every step
  ModelOutput decoder_output = ModelOutput::Logits;  // HiddenStates: decoders as embedding models
  std::function<void(int64_t done_bytes, int64_t total_bytes)> on_load_progress;  // see ModelOptions
  // --tp and --pp: the model split over tensor_parallel x pipeline_parallel ranks of an MPI job,
  // each process one rank (rank 0 drives, the others follow its batches): heads and MLP channels
  // over tensor_parallel ranks (models/tensor_parallel.h), layers over pipeline_parallel stages
  // (models/pipeline_stage.h). 1 x 1: this process alone. CPU only for now.
  int64_t tensor_parallel = 1;
  int64_t pipeline_parallel = 1;
};


struct GenerateRequest {
  std::string prompt;
  int64_t max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings; the text ends before the first match
  bool stop_at_eos = true;
  // No: the prompt already holds its special tokens (a rendered chat template).
  AddSpecial add_special = AddSpecial::Yes;
  // Set from another thread or a signal handler: generation ends before the next token
  // (StopReason::Cancelled).
  const std::atomic<bool>* cancel = nullptr;
  // Speculative decoding (runtime/speculation.h): proposes up to max_draft tokens before each
  // step, which the model checks in one pass. The output is the same with or without it.
  DraftSource* draft = nullptr;
  int64_t max_draft = kDefaultMaxDraft;
  SpeculationOff speculation_off = SpeculationOff::WhenSlower;
};

struct GenerateResult {
  std::string text;             // new text only, stop string excluded
  std::vector<int32_t> ids;     // new tokens only
  int64_t prompt_tokens = 0;
  int64_t reused_tokens = 0;    // prompt tokens whose keys and values the previous call left
  double prefill_seconds = 0;
  double decode_seconds = 0;    // from the first to the last sampled token
  StopReason reason = StopReason::Length;
  SpeculationStats speculation;  // with a draft source
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> open(const EngineOptions& options);
  ~Engine();  // rank 0 of a split model's job releases the other ranks
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Model& model() { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  Backend& backend() { return *backend_; }
  // This process's rank in a split model's job (--tp/--pp; 0 alone). Rank 0 is used as if alone; on the
  // others call follow(), which runs rank 0's passes (parallel/lockstep.h) until it is done.
  int64_t job_rank() const { return job_ ? job_->rank() : 0; }
  void follow();
  int64_t context() const { return model_->context(); }
  KvDtype kv_dtype() const { return cache_.dtype(); }  // as resolved from the options and the model
  const GenerationConfig& generation_config() const { return generation_; }
  // All keys and values, in blocks. prefill/decode_step/generate and perplexity use it as one
  // sequence owning every block; the Scheduler hands blocks to many sequences instead (not both
  // at once). Whoever takes it may overwrite any position, so generate() forgets what it kept.
  KvCache& cache() {
    cached_.clear();
    return cache_;
  }

  // Grammars (GBNF) bound to this model's vocabulary, for SamplingParams::grammar.
  GrammarCache& grammars() { return *grammars_; }

  // Every id must index the model's embedding table (a tokenizer from another model may not).
  Status check_token_ids(const std::vector<int32_t>& ids) const;
  // The tokenizer's EOS or one of config.json's or generation_config.json's eos_token_id values.
  bool is_eos(int32_t token) const;

  // Runs tokens at positions first_pos.. of the one sequence that owns the cache (in chunks of
  // max_rows) and returns the last row's logits (vocab floats, valid until the next call).
  const float* extend(const int32_t* tokens, int64_t n, int64_t first_pos);
  // extend() from position 0.
  const float* prefill(const std::vector<int32_t>& tokens) { return extend(tokens.data(), int64_t(tokens.size()), 0); }
  // Feeds one token at position `pos` and returns its logits.
  const float* decode_step(int32_t token, int64_t pos) { return extend(&token, 1, pos); }
  // One pass over several sequences' chunks (see Model::forward); returns the logits rows the
  // chunks asked for, in order ([rows, vocab], valid until the next call).
  const float* forward(const std::vector<SequenceChunk>& chunks);
  // The same pass with greedy token ids chosen on the device instead of logits: the argmax of each
  // logits row, in order (valid until the next call). Decode steps replay recorded graphs on CUDA.
  const int32_t* forward_greedy(const std::vector<SequenceChunk>& chunks);
  // The same pass with each logits row drawn on the device by its sampler (samplers[i] for the
  // i-th row), penalties included; the caller accepts the ids into the samplers.
  const int32_t* forward_sampled(const std::vector<SequenceChunk>& chunks,
                                 const std::vector<const Sampler*>& samplers);
  TokenRunner& token_runner() { return runner_; }

  // Streams each piece of new text to on_text as soon as it is complete (UTF-8 and stop strings).
  // Keys and values of the previous generate() stay in the cache: a prompt that starts with the
  // previous prompt and reply (the next turn of a chat) only runs its new tokens.
  // GenerateResult::reused_tokens counts the ones skipped.
  Result<GenerateResult> generate(const GenerateRequest& request,
                                  const std::function<void(const std::string&)>& on_text = {});

 private:
  Engine(std::unique_ptr<Backend> backend, std::unique_ptr<Model> model,
         std::unique_ptr<Tokenizer> tokenizer, KvCache cache, DecodeGraphs graphs, GenerationConfig generation);

  std::unique_ptr<Backend> backend_;
  std::shared_ptr<Communicator> job_;  // every rank of a split model's MPI job (null: alone)
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  KvCache cache_;
  std::vector<float> logits_;  // the logits rows of the latest forward call
  std::vector<int32_t> all_blocks_;  // 0..n_blocks-1: generate() owns the whole cache
  TokenRunner runner_;  // after cache_ and backend_: its recordings name both
  GenerationConfig generation_;
  std::vector<int32_t> cached_;  // tokens whose keys and values sit at positions 0.. (generate)
  std::unique_ptr<GrammarCache> grammars_;
};

}  // namespace brisk
