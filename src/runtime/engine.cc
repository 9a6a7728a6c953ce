#include "runtime/engine.h"

#include <unistd.h>

#include <chrono>

#include "parallel/lockstep.h"
#include "parallel/mpi_communicator.h"
#include "parallel/tensor_parallel_backend.h"
#include "runtime/device.h"
#include "tokenizer/utf8.h"

namespace brisk {

namespace {

// --tp N --pp M: this process's place in the MPI job of N x M ranks (rank r: stage r / N, shard
// r % N), its backend wrapped so that row-parallel products are summed over its stage's shards,
// and the ranks of its shard's other stages (nothing when N = M = 1).
struct ParallelJoin {
  TensorParallelRank shard;
  PipelineStage stage;
  TensorParallelBackend* backend = nullptr;  // the wrapper, owned by the engine's backend pointer
  std::shared_ptr<Communicator> world, stages;
};

Result<ParallelJoin> join_parallel(int64_t tp, int64_t pp, const std::string& device, std::unique_ptr<Backend>& backend) {
  ParallelJoin join;
  if (tp <= 1 && pp <= 1) return join;
  const std::string flags = "--tp " + std::to_string(tp) + " --pp " + std::to_string(pp);
  if (device != "cpu") return make_error(flags + " runs on the CPU for now (GPU ranks need the NCCL communicator)");
  BRISK_ASSIGN(world, join_mpi_world());
  if (world->size() != tp * pp)
    return make_error(flags + " needs " + std::to_string(tp * pp) + " ranks; this job has " +
                      std::to_string(world->size()) + ": run it as mpirun -np " + std::to_string(tp * pp) + " brisk ...");
  const int64_t rank = world->rank();
  join.shard = {rank % tp, tp};
  join.stage = {rank / tp, pp};
  join.world = world;
  // Every rank splits the world the same way, in the same order (MPI_Comm_split is collective).
  std::shared_ptr<Communicator> shards = tp > 1 ? split_mpi_world(join.stage.stage, join.shard.rank) : nullptr;
  if (pp > 1) join.stages = split_mpi_world(join.shard.rank, join.stage.stage);
  if (tp > 1) {
    auto wrapper = std::make_unique<TensorParallelBackend>(std::move(backend), shards);
    join.backend = wrapper.get();
    backend = std::move(wrapper);
  }
  return join;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Length: return "length";
    case StopReason::Eos: return "eos";
    case StopReason::StopString: return "stop";
    case StopReason::Context: return "context";
    case StopReason::Cancelled: return "cancelled";
    case StopReason::Grammar: return "grammar";
  }
  return "?";
}

Engine::Engine(std::unique_ptr<Backend> backend, std::unique_ptr<Model> model,
               std::unique_ptr<Tokenizer> tokenizer, KvCache cache, DecodeGraphs graphs, GenerationConfig generation)
    : backend_(std::move(backend)), model_(std::move(model)), tokenizer_(std::move(tokenizer)),
      cache_(std::move(cache)),
      logits_(size_t(model_->config().vocab_size)),
      all_blocks_(size_t(cache_.n_blocks())),
      runner_(*model_, *backend_, graphs),
      generation_(std::move(generation)),
      grammars_(std::make_unique<GrammarCache>(*tokenizer_, model_->config().vocab_size,
                                               [this](int32_t id) { return is_eos(id); })) {
  for (size_t b = 0; b < all_blocks_.size(); ++b) all_blocks_[b] = int32_t(b);
}

Result<std::unique_ptr<Engine>> Engine::open(const EngineOptions& options) {
  BRISK_ASSIGN(backend, make_backend(options.backend));
  BRISK_ASSIGN(job, join_parallel(options.tensor_parallel, options.pipeline_parallel, options.backend.device, backend));
  const ModelOptions model_options{.max_rows = options.max_rows, .context = options.context,
                                   .decoder_output = options.decoder_output,
                                   .on_load_progress = options.on_load_progress, .tensor_parallel = job.shard,
                                   .pipeline = job.stage};
  BRISK_ASSIGN(model, load_model(options.model_dir, *backend, model_options));
  if (job.backend) job.backend->connect(*model);
  if (job.stages) model->connect_pipeline(job.stages);
  if (job.world && job.world->rank() == 0) lead_followers(*model, job.world);
  if (options.context > model->max_context())
    return make_error("--ctx " + std::to_string(options.context) + " exceeds the model's context of " +
                      std::to_string(model->max_context()) + " tokens");
  BRISK_ASSIGN(tokenizer, Tokenizer::load(options.model_dir));
  BRISK_ASSIGN(generation, read_generation_config(options.model_dir));
  // The cache holds at least one sequence of the full context, so every request fits alone.
  const ModelConfig& c = model->config();
  const KvDtype kv_dtype = options.kv_dtype.value_or(c.kv_dtype.value_or(KvDtype::F32));
  const size_t per_block = KvCache::bytes_per_block(c.n_layers, c.n_kv_heads, c.head_dim, kv_dtype);
  const int64_t context_blocks = KvCache::blocks_for(model->context());
  if (options.kv_bytes < 0) return make_error("--kv-mem must be positive");
  if (options.kv_bytes > 0 && options.kv_bytes / int64_t(per_block) < context_blocks)
    return make_error("--kv-mem " + std::to_string(options.kv_bytes) + " bytes holds " +
                      std::to_string(options.kv_bytes / int64_t(per_block) * KvCache::kBlockSize) +
                      " tokens (" + std::string(kv_dtype_name(kv_dtype)) + "), fewer than the context of " + std::to_string(model->context()) +
                      " (" + std::to_string(context_blocks * int64_t(per_block)) +
                      " bytes); raise --kv-mem or lower --ctx");
  const int64_t wanted_blocks = options.kv_bytes > 0 ? options.kv_bytes / int64_t(per_block)
                                                     : KvCache::blocks_for(options.kv_tokens);
  const int64_t kv_blocks = std::max(context_blocks, wanted_blocks);
  // On the CPU an impossible cache is refused here, with the flags that sized it (the allocator
  // would stop with an internal error); device memory is checked by the CUDA backend's allocator.
  if (options.backend.device == "cpu") {
    const double cache_bytes = double(kv_blocks) * double(per_block);
    const double memory_bytes = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
    if (memory_bytes > 0 && cache_bytes > memory_bytes)
      return make_error("the KV cache would take " + std::to_string(int64_t(cache_bytes / (1 << 20))) + " MiB (" +
                        std::to_string(kv_blocks * KvCache::kBlockSize) + " positions, from --kv-mem or the batch size), more than this machine's " +
                        std::to_string(int64_t(memory_bytes / (1 << 20))) + " MiB of memory: lower --max-batch/--batch or set --kv-mem");
  }
  BRISK_ASSIGN(cache, KvCache::create(*backend, c.n_layers, kv_blocks, c.n_kv_heads, c.head_dim, kv_dtype));
  auto engine = std::unique_ptr<Engine>(new Engine(std::move(backend), std::move(model), std::move(tokenizer),
                                                   std::move(cache), options.decode_graphs, std::move(generation)));
  engine->job_ = std::move(job.world);
  return engine;
}

Engine::~Engine() {
  if (job_ && job_->rank() == 0) release_followers(*job_);
}

void Engine::follow() {
  BRISK_CHECK(job_rank() != 0, "Engine::follow: rank 0 leads");
  follow_leader(*model_, cache_, *job_);
}

Status Engine::check_token_ids(const std::vector<int32_t>& ids) const {
  const int64_t vocab = model_->config().vocab_size;
  for (int32_t id : ids)
    if (id < 0 || id >= vocab)
      return make_error("the tokenizer produced id " + std::to_string(id) + " beyond the model's vocab_size " +
                        std::to_string(vocab) + " (tokenizer and model do not match)");
  return ok_status();
}

bool Engine::is_eos(int32_t token) const {
  const auto eos = tokenizer_->eos_id();
  const auto& config_eos = model_->config().eos_ids;
  const auto& generation_eos = generation_.eos_ids;
  return (eos && token == *eos) ||
         std::find(config_eos.begin(), config_eos.end(), token) != config_eos.end() ||
         std::find(generation_eos.begin(), generation_eos.end(), token) != generation_eos.end();
}

const float* Engine::extend(const int32_t* tokens, int64_t n, int64_t first_pos) {
  BRISK_CHECK(n > 0 && first_pos >= 0 && first_pos + n <= context(), "extend: bad length");
  cached_.clear();
  for (int64_t done = 0; done < n; done += model_->max_rows()) {
    const int64_t rows = std::min(model_->max_rows(), n - done);
    model_->forward(tokens + done, rows, first_pos + done, cache_, done + rows == n ? LogitRows::Last : LogitRows::None,
                    logits_.data());
  }
  return logits_.data();
}

const float* Engine::forward(const std::vector<SequenceChunk>& chunks) {
  size_t rows = 0;
  for (const SequenceChunk& c : chunks)
    rows += c.logits == LogitRows::All ? size_t(c.n_tokens) : c.logits == LogitRows::Last ? 1 : 0;
  const size_t needed = rows * size_t(model_->config().vocab_size);
  if (logits_.size() < needed) logits_.resize(needed);
  cached_.clear();
  model_->forward(chunks, cache_, logits_.data());
  return logits_.data();
}

const int32_t* Engine::forward_greedy(const std::vector<SequenceChunk>& chunks) {
  cached_.clear();
  return runner_.run_greedy(chunks, cache_);
}

const int32_t* Engine::forward_sampled(const std::vector<SequenceChunk>& chunks,
                                       const std::vector<const Sampler*>& samplers) {
  cached_.clear();
  return runner_.run_sampled(chunks, cache_, samplers);
}

Result<GenerateResult> Engine::generate(const GenerateRequest& request,
                                        const std::function<void(const std::string&)>& on_text) {
  if (model_->output() != ModelOutput::Logits)
    return make_error("model_type '" + model_->config().model_type + "' does not generate text (use brisk embed / classify)");
  BRISK_TRY(utf8::require_valid(request.prompt, "the prompt"));
  const std::vector<int32_t> prompt = tokenizer_->encode(request.prompt, request.add_special);
  if (prompt.empty()) return make_error("the prompt is empty (and the tokenizer adds no BOS token)");
  if (int64_t(prompt.size()) >= context())
    return make_error("the prompt has " + std::to_string(prompt.size()) +
                      " tokens, which fills the context of " + std::to_string(context()));
  if (request.max_new_tokens < 0) return make_error("the number of new tokens must be >= 0");
  if (request.draft && (request.max_draft < 1 || request.max_draft > kMaxDraft))
    return make_error("the draft length must be 1 to " + std::to_string(kMaxDraft) + ", not " +
                      std::to_string(request.max_draft));
  BRISK_TRY(check_token_ids(prompt));

  GenerateResult result;
  result.prompt_tokens = int64_t(prompt.size());
  // The previous call's keys and values that this prompt starts with; at least the last prompt
  // token runs again, for its logits.
  size_t reuse = 0;
  while (reuse < cached_.size() && reuse + 1 < prompt.size() && cached_[reuse] == prompt[reuse]) ++reuse;
  result.reused_tokens = int64_t(reuse);
  cached_.assign(prompt.begin(), prompt.begin() + long(reuse));
  // Only token ids come back from each step: the backend picks them (argmax for plain greedy,
  // sample_rows otherwise), and CUDA replays recorded decode steps.
  const bool plain_greedy = request.sampling.plain_greedy();
  Sampler sampler(request.sampling, model_->config().vocab_size);
  sampler.add_prompt(prompt);
  const std::vector<const Sampler*> last_row_sampler = {&sampler}, no_rows;
  // A drawn token, with the grammar's state once the sampler took it (SequenceOutput::push).
  struct Drawn {
    int32_t token;
    GrammarProgress grammar;
  };
  // Runs tokens at positions first_pos.. (in chunks of max_rows) and returns the next token.
  auto advance = [&](const int32_t* tokens, int64_t n, int64_t first_pos) {
    int32_t next = 0;
    for (int64_t done = 0; done < n; done += model_->max_rows()) {
      const int64_t rows = std::min(model_->max_rows(), n - done);
      const bool last = done + rows == n;
      const std::vector<SequenceChunk> chunk = {{tokens + done, rows, first_pos + done, all_blocks_.data(),
                                                 int64_t(all_blocks_.size()), last ? LogitRows::Last : LogitRows::None}};
      const int32_t* ids = plain_greedy ? runner_.run_greedy(chunk, cache_)
                                        : runner_.run_sampled(chunk, cache_, last ? last_row_sampler : no_rows);
      if (last) next = ids[0];
    }
    cached_.insert(cached_.end(), tokens, tokens + n);
    sampler.accept(next);
    return std::vector<Drawn>{{next, sampler.grammar_progress()}};
  };
  // Speculation: `token` at `pos` followed by the draft's proposals, checked in one pass. Returns
  // the tokens the model itself draws after `token`: the proposals it agrees with, then its own.
  DraftLength draft_length(request.max_draft);
  SpeculationPace pace;  // plain steps where speculating measured slower
  std::vector<int32_t> sequence;
  auto speculate = [&](int32_t token, int64_t pos, int64_t budget) {
    sequence.assign(cached_.begin(), cached_.end());
    sequence.push_back(token);
    const int64_t room = std::min({draft_length.next(), budget - 1, context() - pos - 1});
    std::vector<int32_t> check = {token};
    if (room > 0) {
      const std::vector<int32_t> drafts = request.draft->propose(sequence, room, sampler);
      check.insert(check.end(), drafts.begin(), drafts.end());
    }
    const int64_t proposed = int64_t(check.size()) - 1;
    if (proposed == 0) {  // nothing to check (paused, or nothing proposed): a plain step
      draft_length.observe(0, 0);
      result.speculation.steps += 1;
      return advance(&token, 1, pos);
    }
    const std::vector<SequenceChunk> chunk = {{check.data(), int64_t(check.size()), pos, all_blocks_.data(),
                                               int64_t(all_blocks_.size()), LogitRows::All}};
    std::vector<Drawn> drawn;
    const int64_t vocab = model_->config().vocab_size;
    const int32_t* ids = nullptr;
    if (plain_greedy) {
      ids = runner_.run_greedy(chunk, cache_);
    } else {  // the draws plain decoding makes: row i at the sampler's step, in order
      logits_.resize(size_t((proposed + 1) * vocab));
      model_->forward(chunk, cache_, logits_.data());
    }
    for (int64_t i = 0; i <= proposed; ++i) {
      const int32_t id = plain_greedy ? ids[i] : sampler.sample(logits_.data() + i * vocab);
      if (plain_greedy) sampler.accept(id);
      drawn.push_back({id, sampler.grammar_progress()});
      if (i == proposed || id != check[size_t(i + 1)]) break;
    }
    const int64_t kept = int64_t(drawn.size()) - 1;
    cached_.insert(cached_.end(), check.begin(), check.begin() + kept + 1);
    result.speculation.steps += 1;
    result.speculation.proposed += proposed;
    result.speculation.accepted += kept;
    draft_length.observe(proposed, kept);
    return drawn;
  };
  SequenceOutput output(*tokenizer_, request.stop, {request.max_new_tokens, context(), request.stop_at_eos},
                        result.prompt_tokens, [this](int32_t id) { return is_eos(id); });
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return;
    result.text += piece;
    if (on_text) on_text(piece);
  };

  double t0 = now_seconds();
  std::vector<Drawn> drawn = advance(prompt.data() + reuse, int64_t(prompt.size() - reuse), int64_t(reuse));
  double t1 = now_seconds();
  result.prefill_seconds = t1 - t0;

  // Each round outputs the tokens drawn for positions pos.., then runs the last of them.
  bool finished = request.max_new_tokens == 0;
  for (int64_t pos = int64_t(prompt.size()); !finished;) {
    for (const Drawn& d : drawn) {
      if (d.token == kNonFiniteLogits) {
        cached_.clear();  // keys and values of a pass that went non-finite are not worth reusing
        return make_error(sampler.failure_message(pos));
      }
      const SequenceOutput::Step step = output.push(d.token, d.grammar);
      if (step.accepted) result.ids.push_back(d.token);
      emit(step.text);
      if (step.ended) {
        result.reason = *step.ended;
        finished = true;
        break;
      }
      ++pos;
    }
    if (finished) break;
    if (request.cancel && request.cancel->load()) {
      result.reason = StopReason::Cancelled;
      break;
    }
    const int32_t last = drawn.back().token;
    const bool speculating =
        request.draft && (request.speculation_off == SpeculationOff::Never || pace.speculate());
    const double step_start = now_seconds();
    drawn = speculating ? speculate(last, pos - 1, request.max_new_tokens - output.generated())
                        : advance(&last, 1, pos - 1);
    if (request.draft) {
      pace.observe(now_seconds() - step_start, int64_t(drawn.size()), speculating);
      if (!speculating) result.speculation.steps += 1;  // a pass of the model all the same
    }
  }
  result.decode_seconds = now_seconds() - t1;
  return result;
}

}  // namespace brisk
