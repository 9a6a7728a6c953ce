#include "runtime/scheduler.h"

#include <algorithm>
#include <cmath>

#include "runtime/kv_blocks.h"
#include "runtime/sequence_output.h"

namespace brisk {

// One request in flight. tokens holds the prompt and every sampled token; the first `computed`
// of them have keys and values in the sequence's blocks. A decode step computes the last sampled
// token; a prefill step computes a chunk of the prompt (or, after preemption, of everything).
struct Scheduler::Sequence {
  Sequence(uint64_t id, CompletionRequest r, EventSink s, Engine& engine, int64_t max_draft)
      : id(id), request(std::move(r)), sink(std::move(s)), tokens(request.prompt),
        prompt_tokens(int64_t(request.prompt.size())),
        sampler(request.sampling, engine.model().config().vocab_size),
        output(engine.tokenizer(), request.stop, {request.max_new_tokens, engine.context(), request.stop_at_eos},
               prompt_tokens, [&engine](int32_t token) { return engine.is_eos(token); }),
        draft_length(max_draft) {
    sampler.add_prompt(request.prompt);
  }

  uint64_t id;
  CompletionRequest request;
  EventSink sink;
  std::vector<int32_t> tokens;
  int64_t prompt_tokens;
  int64_t computed = 0;
  std::vector<int32_t> blocks;
  int64_t published = 0;       // leading blocks offered to the prefix cache
  uint64_t prefix_hash = 0;    // chain hash through block `published - 1`
  Sampler sampler;
  SequenceOutput output;
  bool cancelled = false;
  bool preempted = false;  // blocks taken back this step; requeued at its end
  // Prompt scoring (request.prompt_logprobs): the next prompt position to score, and the scores
  // held for the first event.
  int64_t prompt_scored = 1;
  StreamEvent prompt_scores;
  bool done = false;
  // Speculation: this step's checked tokens (the last sampled one, then the proposals) and the
  // draft length its acceptance so far allows.
  std::vector<int32_t> checked;
  DraftLength draft_length;
  DraftCache draft_cache;  // its state with the draft source (a draft model's keys and values)
  int64_t speculated = 0, accepted = 0;  // this request's proposals and the kept ones

  int64_t generated() const { return output.generated(); }
  // Only its last sampled token lacks keys and values: the next step decodes it.
  bool decoding() const { return computed > 0 && int64_t(tokens.size()) - computed == 1; }
};

namespace {

}  // namespace

Scheduler::Scheduler(Engine& engine, SchedulerOptions options)
    : engine_(engine), options_(options),
      blocks_(std::make_unique<KvBlocks>(engine.cache().n_blocks())) {
  BRISK_CHECK(options_.max_batch >= 1 && options_.prefill_chunk >= 1, "Scheduler: bad options");
  options_.max_batch = std::min(options_.max_batch, engine.model().max_rows());
  BRISK_CHECK(!(options_.draft && options_.lookup > 0), "Scheduler: one draft source");
  if (options_.lookup > 0) lookup_ = std::make_unique<PromptLookup>(options_.lookup);
  draft_ = options_.draft ? options_.draft : lookup_.get();
  worker_ = std::thread([this] { worker_loop(); });
}

Scheduler::~Scheduler() {
  shutdown(Drain::Cancel);
}

SubmitResult Scheduler::submit(CompletionRequest request, EventSink sink) {
  SubmitResult result;
  auto reject = [&](SubmitError error, std::string message) {
    result.error = error;
    result.message = std::move(message);
    return result;
  };
  const int64_t context = engine_.context();
  if (engine_.model().output() != ModelOutput::Logits)
    return reject(SubmitError::BadRequest, "model: this model does not generate text (an encoder: use /v1/embeddings)");
  if (request.prompt.empty()) return reject(SubmitError::BadRequest, "prompt: the prompt is empty");
  if (int64_t(request.prompt.size()) >= context)
    return reject(SubmitError::PromptTooLong,
                  "prompt: " + std::to_string(request.prompt.size()) +
                      " tokens do not fit the context of " + std::to_string(context) + " tokens");
  if (request.max_new_tokens < (request.prompt_logprobs >= 0 ? 0 : 1))
    return reject(SubmitError::BadRequest, "max_tokens: must be at least 1 (0 only when scoring the prompt)");
  if (Status ids = engine_.check_token_ids(request.prompt); !ids.ok())
    return reject(SubmitError::BadRequest, "prompt: " + ids.error().message);
  if (request.top_logprobs > 20 || request.prompt_logprobs > 20)
    return reject(SubmitError::BadRequest, "top_logprobs: at most 20");

  std::lock_guard<std::mutex> lock(mutex_);
  if (!accepting_) return reject(SubmitError::ShuttingDown, "the server is shutting down");
  if (int64_t(waiting_.size()) >= options_.max_queue)
    return reject(SubmitError::QueueFull, "the request queue is full (" +
                                              std::to_string(options_.max_queue) + " waiting)");
  result.id = next_id_++;
  waiting_.push_back(std::make_unique<Sequence>(result.id, std::move(request), std::move(sink), engine_,
                                                      options_.max_draft));
  stats_.queued = int64_t(waiting_.size());
  wake_.notify_all();
  return result;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_.push_back(id);
  wake_.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Scheduler::shutdown(Drain how) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    accepting_ = false;
    if (how == Drain::Cancel) drain_ = Drain::Cancel;
    stop_ = true;
    wake_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
}

struct Scheduler::Job {
  const std::function<void(Engine&)>* fn;
  bool done = false;
  std::condition_variable finished;
};

bool Scheduler::run_on_worker(const std::function<void(Engine&)>& fn) {
  Job job{&fn};
  std::unique_lock<std::mutex> lock(mutex_);
  if (!accepting_) return false;
  jobs_.push_back(&job);
  wake_.notify_all();
  job.finished.wait(lock, [&] { return job.done; });
  return true;
}

void Scheduler::worker_loop() {
  for (;;) {
    std::vector<std::unique_ptr<Sequence>> ended;  // finished outside the lock: sinks may call back
    bool quit = false;
    std::deque<Job*> jobs;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_ || !waiting_.empty() || !running_.empty() || !cancelled_.empty() || !jobs_.empty();
      });
      jobs.swap(jobs_);
      quit = stop_ && (drain_ == Drain::Cancel || (waiting_.empty() && running_.empty()));
      if (quit) {
        for (auto& seq : running_) ended.push_back(std::move(seq));
        for (auto& seq : waiting_) ended.push_back(std::move(seq));
        running_.clear();
        waiting_.clear();
      } else {
        take_cancellations_locked(ended);
        admit_locked();
      }
    }
    for (auto& seq : ended)
      finish(*seq, StopReason::Length, quit ? "cancelled: the server is shutting down" : "cancelled");
    for (Job* job : jobs) {  // between steps: the engine is the worker's alone here
      (*job->fn)(engine_);
      std::lock_guard<std::mutex> lock(mutex_);
      job->done = true;
      job->finished.notify_all();
    }
    if (quit) break;
    step();
  }
}

void Scheduler::take_cancellations_locked(std::vector<std::unique_ptr<Sequence>>& ended) {
  for (uint64_t id : cancelled_) {
    for (auto& seq : running_)
      if (seq->id == id) seq->cancelled = true;
    for (auto& seq : waiting_)
      if (seq->id == id) seq->cancelled = true;
  }
  cancelled_.clear();
  // Waiting requests that were cancelled end now; running ones at the top of the next step.
  for (auto it = waiting_.begin(); it != waiting_.end();)
    if ((*it)->cancelled) {
      ended.push_back(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
}

// Moves waiting requests into the running batch while there is room in the batch and free
// blocks for their first chunk (a preempted sequence waits until memory frees up instead of
// taking it straight back).
void Scheduler::admit_locked() {
  int64_t spare_blocks = blocks_->available();
  while (!waiting_.empty() && int64_t(running_.size()) < options_.max_batch) {
    const Sequence& next = *waiting_.front();
    const int64_t first_chunk = std::min<int64_t>(int64_t(next.tokens.size()), options_.prefill_chunk);
    const int64_t needed = KvCache::blocks_for(first_chunk + 1);
    if (!running_.empty() && needed > spare_blocks) break;
    spare_blocks -= needed;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  stats_.queued = int64_t(waiting_.size());
}

void Scheduler::finish(Sequence& seq, StopReason reason, const std::string& error) {
  release_blocks(seq);
  seq.done = true;
  StreamEvent event = take_prompt_scores(seq);
  if (error.empty()) event.text = seq.output.flush();
  event.finished = true;
  event.reason = reason;
  event.error = error;
  event.prompt_tokens = seq.prompt_tokens;
  event.completion_tokens = seq.generated();
  event.speculated_tokens = seq.speculated;
  event.accepted_tokens = seq.accepted;
  if (seq.sink) seq.sink(event);
}

// A new event carrying the prompt's scores if they have not gone out yet.
StreamEvent Scheduler::take_prompt_scores(Sequence& seq) {
  StreamEvent event;
  std::swap(event.prompt_logprobs, seq.prompt_scores.prompt_logprobs);
  std::swap(event.prompt_top_logprobs, seq.prompt_scores.prompt_top_logprobs);
  return event;
}

// Takes cached blocks for the sequence's leading full blocks (never its last token: that one
// must be computed to give logits).
void Scheduler::reuse_prefix(Sequence& seq) {
  const int64_t bs = KvCache::kBlockSize;
  const int64_t reusable = (int64_t(seq.tokens.size()) - 1) / bs;
  uint64_t hash = 0;
  for (int64_t i = 0; i < reusable; ++i) {
    const uint64_t next = KvBlocks::chain_hash(hash, seq.tokens.data() + i * bs, bs);
    const std::optional<int32_t> block = blocks_->lookup(next);
    if (!block) break;
    seq.blocks.push_back(*block);
    ++prefix_blocks_reused_;
    hash = next;
    seq.computed += bs;
    seq.published = i + 1;
    seq.prefix_hash = hash;
  }
}

// Gives the sequence blocks for positions up to `end`; when the pool is exhausted, preempts the
// most recently admitted other sequence (its blocks return to the pool and it is requeued to be
// recomputed later). Returns false when nothing more can be freed.
bool Scheduler::reserve(Sequence& seq, int64_t end) {
  while (int64_t(seq.blocks.size()) < KvCache::blocks_for(end)) {
    if (std::optional<int32_t> block = blocks_->allocate()) {
      seq.blocks.push_back(*block);
      continue;
    }
    Sequence* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend(); ++it)
      if (it->get() != &seq && !(*it)->blocks.empty()) {
        victim = it->get();
        break;
      }
    if (!victim) return false;
    preempt(*victim);
  }
  return true;
}

void Scheduler::preempt(Sequence& seq) {
  for (int32_t b : seq.blocks) blocks_->release(b);
  seq.blocks.clear();
  seq.computed = 0;
  seq.published = 0;
  seq.prefix_hash = 0;
  seq.preempted = true;
  ++preemptions_;
}

void Scheduler::step() {
  // Cancelled sequences end before any work is spent on them.
  for (auto& seq : running_)
    if (seq->cancelled) finish(*seq, StopReason::Length, "cancelled");
  std::erase_if(running_, [](const auto& seq) { return seq->cancelled; });

  // Plan: every decode row first (one token each, and its proposals when speculating), then
  // prompt chunks within the budget.
  std::vector<Sequence*> planned;
  std::vector<int64_t> planned_rows;
  int64_t rows = 0, prefill_budget = options_.prefill_chunk;
  const int64_t max_rows = engine_.model().max_rows();
  const int64_t decoding_now =
      std::count_if(running_.begin(), running_.end(), [](const auto& seq) { return seq->decoding(); });
  for (auto& seq : running_) seq->checked.clear();
  if (draft_ && decoding_now <= options_.speculation_max_batch) propose(max_rows);
  for (bool decode_pass : {true, false})
    for (auto& owned : running_) {
      Sequence& seq = *owned;
      if (seq.preempted) continue;
      const bool decoding = seq.decoding();
      if (decoding != decode_pass) continue;
      // A scored prompt needs every position's logits: nothing is taken from the prefix cache.
      if (seq.computed == 0 && seq.blocks.empty() && seq.request.prompt_logprobs < 0) reuse_prefix(seq);
      int64_t n = int64_t(seq.tokens.size()) - seq.computed;
      if (!decoding) n = std::min(n, prefill_budget);
      if (!seq.checked.empty()) n = int64_t(seq.checked.size());  // propose() left room for them
      n = std::min(n, max_rows - rows);
      if (n <= 0) continue;
      if (!reserve(seq, seq.computed + n)) continue;  // waits for blocks to free up
      if (!decoding) prefill_budget -= n;
      rows += n;
      planned.push_back(&seq);
      planned_rows.push_back(n);
    }
  // Reserving may have preempted a sequence planned earlier in this step: drop it from the batch.
  std::vector<Sequence*> batch;
  std::vector<SequenceChunk> chunks;
  for (size_t i = 0; i < planned.size(); ++i) {
    Sequence& seq = *planned[i];
    if (seq.preempted) continue;
    const int64_t n = planned_rows[i];
    const bool last = seq.computed + n == int64_t(seq.tokens.size());
    const bool scoring = seq.request.prompt_logprobs >= 0 && seq.computed < seq.prompt_tokens;
    batch.push_back(&seq);
    const bool checking = !seq.checked.empty();
    chunks.push_back({checking ? seq.checked.data() : seq.tokens.data() + seq.computed, n, seq.computed, seq.blocks.data(),
                      int64_t(seq.blocks.size()),
                      scoring || checking ? LogitRows::All : last ? LogitRows::Last : LogitRows::None});
  }
  requeue_preempted();

  if (!batch.empty()) {
    // Only token ids come back from the device, unless a sequence asked for logprobs: plain greedy
    // batches take the argmax, others are drawn by Backend::sample_rows. Logprobs need the logits
    // rows on the host, where the Sampler draws by the same definition.
    const bool plain_greedy = std::all_of(batch.begin(), batch.end(), [](const Sequence* seq) {
      return seq->request.sampling.plain_greedy();
    });
    // Checked proposals of plain greedy batches are argmaxes on the device; sampled ones are
    // drawn in order by their sampler, one step per row, on the host.
    bool host_logits = false;
    for (size_t i = 0; i < batch.size(); ++i) {
      const bool checking = !batch[i]->checked.empty();
      host_logits |= batch[i]->request.top_logprobs >= 0 || (chunks[i].logits == LogitRows::All && !checking) ||
                     (checking && !plain_greedy);
    }
    std::vector<const Sampler*> samplers;
    for (size_t i = 0; i < batch.size(); ++i)
      if (chunks[i].logits != LogitRows::None) samplers.push_back(&batch[i]->sampler);
    const float* logits = host_logits ? engine_.forward(chunks) : nullptr;
    const int32_t* ids = host_logits    ? nullptr
                         : plain_greedy ? engine_.forward_greedy(chunks)
                                        : engine_.forward_sampled(chunks, samplers);
    const int64_t vocab = engine_.model().config().vocab_size;
    for (size_t i = 0; i < batch.size(); ++i) {
      Sequence& seq = *batch[i];
      if (!seq.checked.empty()) {
        check_proposals(seq, host_logits ? logits : nullptr, ids);
        if (host_logits) logits += chunks[i].n_tokens * vocab;
        else ids += chunks[i].n_tokens;
        continue;
      }
      const int64_t first_pos = seq.computed;
      seq.computed += chunks[i].n_tokens;
      publish_computed_blocks(seq);
      if (chunks[i].logits == LogitRows::All) {  // a scored prompt chunk: one row per position
        score_prompt(seq, logits, first_pos, chunks[i].n_tokens);
        logits += (chunks[i].n_tokens - 1) * vocab;  // the last row predicts the next token
        if (seq.computed < int64_t(seq.tokens.size())) {
          logits += vocab;
          continue;
        }
      }
      if (chunks[i].logits == LogitRows::None) continue;
      if (seq.request.max_new_tokens == 0) {  // score only
        finish(seq, StopReason::Length);
        logits += vocab;
        continue;
      }
      if (host_logits) {
        row_.assign(logits, logits + vocab);  // the sampler edits its row (penalties)
        emit_token(seq, seq.sampler.sample(row_.data()), logits);
        logits += vocab;
      } else {
        seq.sampler.accept(*ids);
        emit_token(seq, *ids++, nullptr);
      }
    }
    std::erase_if(running_, [](const auto& seq) { return seq->done; });
  }
  update_stats();
}

// Each decoding sequence's proposals for this step, into its `checked` after its last token, all
// asked of the draft source at once (a draft model drafts for them in batched passes). Rows are
// counted as planned (decode rows first, in order), so that every proposal fits max_rows.
void Scheduler::propose(int64_t max_rows) {
  std::vector<Sequence*> asking;
  std::vector<DraftRequest> requests;
  int64_t rows = 0;
  for (auto& owned : running_) {
    Sequence& seq = *owned;
    if (seq.preempted || !seq.decoding()) continue;
    const int64_t room = std::min({seq.draft_length.next(), seq.request.max_new_tokens - seq.generated() - 1,
                                   engine_.context() - int64_t(seq.tokens.size()), max_rows - rows - 1});
    rows += 1 + std::max<int64_t>(room, 0);
    if (room <= 0) {
      seq.draft_length.observe(0, 0);  // a plain decode row this step
      continue;
    }
    asking.push_back(&seq);
    requests.push_back({&seq.tokens, room, &seq.sampler, &seq.draft_cache, {}});
  }
  draft_->propose_all(requests);
  for (size_t i = 0; i < asking.size(); ++i) {
    Sequence& seq = *asking[i];
    if (requests[i].proposals.empty()) {
      seq.draft_length.observe(0, 0);
      continue;
    }
    seq.checked = {seq.tokens.back()};
    seq.checked.insert(seq.checked.end(), requests[i].proposals.begin(), requests[i].proposals.end());
  }
}

// Offers the sequence's newly computed whole blocks to the prefix cache.
void Scheduler::publish_computed_blocks(Sequence& seq) {
  const int64_t bs = KvCache::kBlockSize;
  while (seq.published < seq.computed / bs) {
    seq.prefix_hash = KvBlocks::chain_hash(seq.prefix_hash, seq.tokens.data() + seq.published * bs, bs);
    blocks_->publish(seq.blocks[size_t(seq.published)], seq.prefix_hash);
    ++seq.published;
  }
}

// A speculating sequence's checked rows (host logits, or device argmaxes): the model's own draw
// at each row, in order, kept while it equals the proposal the row follows. The keys and values of
// the last sampled token and of the kept proposals stay; the rest are overwritten later.
void Scheduler::check_proposals(Sequence& seq, const float* logits, const int32_t* ids) {
  const int64_t vocab = engine_.model().config().vocab_size, rows = int64_t(seq.checked.size());
  const int64_t start = seq.computed;
  int64_t kept = 0;
  for (int64_t r = 0; r < rows && !seq.done; ++r) {
    int32_t token;
    if (logits) {
      row_.assign(logits + r * vocab, logits + (r + 1) * vocab);
      token = seq.sampler.sample(row_.data());
    } else {
      token = ids[r];
      seq.sampler.accept(token);
    }
    emit_token(seq, token, logits ? logits + r * vocab : nullptr);
    if (r + 1 == rows || token != seq.checked[size_t(r + 1)]) break;
    ++kept;
  }
  seq.computed = start + 1 + kept;
  if (!seq.done) publish_computed_blocks(seq);  // a finished sequence gave its blocks back
  speculated_tokens_ += rows - 1;
  accepted_tokens_ += kept;
  seq.speculated += rows - 1;
  seq.accepted += kept;
  seq.draft_length.observe(rows - 1, kept);
}

// Scores the prompt positions a chunk's logits rows (from first_pos) predict, each once (a
// preempted sequence recomputes its rows).
void Scheduler::score_prompt(Sequence& seq, const float* rows, int64_t first_pos, int64_t n) {
  const int64_t vocab = engine_.model().config().vocab_size;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t predicted = first_pos + r + 1;
    if (predicted >= seq.prompt_tokens || predicted < seq.prompt_scored) continue;
    append_logprobs(rows + r * vocab, vocab, seq.tokens[size_t(predicted)], seq.request.prompt_logprobs,
                    seq.prompt_scores.prompt_logprobs, seq.prompt_scores.prompt_top_logprobs);
    seq.prompt_scored = predicted + 1;
  }
}

// Streams the token chosen after the sequence's last one (logits_row, when given, for logprobs)
// and ends the sequence on EOS, a stop string, max_tokens or the context.
void Scheduler::emit_token(Sequence& seq, int32_t token, const float* logits_row) {
  if (token == kNonFiniteLogits)
    return finish(seq, StopReason::Length, seq.sampler.failure_message(seq.computed));
  const int64_t vocab = engine_.model().config().vocab_size;
  SequenceOutput::Step step =
      seq.output.push(token, seq.sampler.grammar_progress());
  StreamEvent event = take_prompt_scores(seq);
  if (step.accepted) {  // not EOS, which ends the sequence without being part of its output
    event.ids.push_back(token);
    if (logits_row && seq.request.top_logprobs >= 0)
      append_logprobs(logits_row, vocab, token, seq.request.top_logprobs, event.logprobs, event.top_logprobs);
    seq.tokens.push_back(token);
  }
  event.text = std::move(step.text);
  event.prompt_tokens = seq.prompt_tokens;
  event.completion_tokens = seq.generated();
  event.speculated_tokens = seq.speculated;
  event.accepted_tokens = seq.accepted;
  if (step.ended) {
    event.finished = true;
    event.reason = *step.ended;
    release_blocks(seq);
    seq.done = true;
  }
  if (seq.sink) seq.sink(event);
}

// Called outside the lock. Stats are refreshed here, before the sequence's last event goes out,
// so a caller that saw a request end also sees its blocks free.
void Scheduler::release_blocks(Sequence& seq) {
  for (int32_t b : seq.blocks) blocks_->release(b);
  seq.blocks.clear();
  if (draft_) draft_->release(seq.draft_cache);
  update_stats();
}

void Scheduler::requeue_preempted() {
  std::lock_guard<std::mutex> lock(mutex_);
  // Back to the front of the queue, oldest first, to be recomputed when blocks free up.
  for (auto it = running_.rbegin(); it != running_.rend(); ++it)
    if ((*it)->preempted) {
      (*it)->preempted = false;
      waiting_.push_front(std::move(*it));
    }
  std::erase_if(running_, [](const auto& seq) { return seq == nullptr; });
}

void Scheduler::update_stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.queued = int64_t(waiting_.size());
  stats_.running = int64_t(running_.size());
  stats_.kv_blocks_used = blocks_->used();
  stats_.kv_blocks_free = blocks_->available();
  stats_.preemptions = preemptions_;
  stats_.prefix_blocks_reused = prefix_blocks_reused_;
  stats_.speculated_tokens = speculated_tokens_;
  stats_.accepted_tokens = accepted_tokens_;
}

}  // namespace brisk
