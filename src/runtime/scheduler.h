// Runs many generation requests on one engine. A worker thread owns the model; callers submit
// tokenized requests and receive their tokens as events. The server (serve/) sits on top of this
// and knows nothing of kernels; the engine below knows nothing of HTTP.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine.h"
#include "runtime/logprobs.h"

namespace brisk {

class KvBlocks;

struct CompletionRequest {
  std::vector<int32_t> prompt;  // token ids (the caller tokenizes and applies chat templates)
  int64_t max_new_tokens = 16;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings; the text ends before the first match
  bool stop_at_eos = true;
  int32_t top_logprobs = -1;      // -1: no logprobs; 0..20: the chosen token's plus that many
  // -1: none; 0..20: also score the prompt (echo): each prompt token after the first gets its
  // logprob and that many alternatives, on the request's first event. The prompt is then computed
  // whole (no prefix-cache reuse), and max_new_tokens may be 0 (score only).
  int32_t prompt_logprobs = -1;
};

// One step of one request: zero or more new tokens and the text they completed. The last event
// of a request has finished = true (and may carry tokens of its own).
struct StreamEvent {
  std::string text;                  // new text: whole UTF-8 characters, stop strings held back
  std::vector<int32_t> ids;          // new tokens
  std::vector<float> logprobs;       // per new token (when requested)
  std::vector<std::vector<TokenLogprob>> top_logprobs;  // per new token (when requested)
  std::vector<float> prompt_logprobs;                          // prompt tokens 1.. (prompt_logprobs)
  std::vector<std::vector<TokenLogprob>> prompt_top_logprobs;  // their alternatives
  bool finished = false;
  StopReason reason = StopReason::Length;  // valid when finished
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;     // so far
  std::string error;                 // non-empty: the request failed (finished is true)
};

// Called on the scheduler's worker thread; must return quickly (queue the event, never block on
// a socket).
using EventSink = std::function<void(const StreamEvent&)>;

enum class SubmitError { None, QueueFull, PromptTooLong, BadRequest, ShuttingDown };

struct SubmitResult {
  uint64_t id = 0;  // valid when error == None
  SubmitError error = SubmitError::None;
  std::string message;  // why, naming the field at fault
};

struct SchedulerStats {
  int64_t queued = 0;       // waiting for a slot
  int64_t running = 0;      // sequences in the running batch
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_free = 0;
  int64_t preemptions = 0;  // sequences requeued because KV memory ran out
  int64_t prefix_blocks_reused = 0;  // blocks taken from the prefix cache instead of computed
};

struct SchedulerOptions {
  int64_t max_batch = 64;        // sequences decoded together; 1 = one request at a time
  int64_t max_queue = 1024;      // waiting requests before submit says QueueFull
  int64_t prefill_chunk = 256;   // prompt tokens per step, so decodes keep flowing
};

class Scheduler {
 public:
  Scheduler(Engine& engine, SchedulerOptions options);
  ~Scheduler();  // cancels what is left and joins the worker
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Thread-safe. On success the sink receives events until one has finished = true.
  SubmitResult submit(CompletionRequest request, EventSink sink);
  // Thread-safe. The request ends at the next step (its sink gets a finished event) and frees its
  // KV blocks; cancelling an unknown or finished id does nothing.
  void cancel(uint64_t id);
  SchedulerStats stats() const;
  // Stops taking requests; waits for running and queued ones to finish, or cancels them.
  enum class Drain { Finish, Cancel };
  void shutdown(Drain how);

  Engine& engine() { return engine_; }

  // Runs `job` on the worker thread, which owns the engine, between two steps, and waits for it
  // (encoder passes for /v1/embeddings). Thread-safe; false, without running it, once shutting down.
  bool run_on_worker(const std::function<void(Engine&)>& job);

 private:
  struct Sequence;
  void worker_loop();
  void step();
  void take_cancellations_locked(std::vector<std::unique_ptr<Sequence>>& ended);
  void admit_locked();
  void reuse_prefix(Sequence& seq);
  bool reserve(Sequence& seq, int64_t end);
  void preempt(Sequence& seq);
  void requeue_preempted();
  void emit_token(Sequence& seq, int32_t token, const float* logits_row);
  void score_prompt(Sequence& seq, const float* rows, int64_t first_pos, int64_t n);
  static StreamEvent take_prompt_scores(Sequence& seq);
  void finish(Sequence& seq, StopReason reason, const std::string& error = "");
  void release_blocks(Sequence& seq);
  void update_stats();

  Engine& engine_;
  SchedulerOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<uint64_t> cancelled_;
  struct Job;
  std::deque<Job*> jobs_;  // run_on_worker's callers wait on their own Job
  uint64_t next_id_ = 1;
  bool accepting_ = true;
  bool stop_ = false;
  Drain drain_ = Drain::Finish;
  SchedulerStats stats_;
  // Worker-thread state.
  std::unique_ptr<KvBlocks> blocks_;
  int64_t preemptions_ = 0;
  int64_t prefix_blocks_reused_ = 0;
  std::vector<float> row_;  // one logits row for the sampler
  std::thread worker_;
};

}  // namespace brisk
