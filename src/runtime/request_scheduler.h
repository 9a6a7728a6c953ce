// What the server asks of whatever runs its generation requests: tokenized requests in, token
// events out, cancellation, counts and a clean stop. One Scheduler (runtime/scheduler.h) does it
// on one engine; a ReplicaRouter (runtime/replica_router.h) over several replicas of the model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/logprobs.h"

namespace brisk {

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
  int64_t speculated_tokens = 0;     // so far: proposed by speculation (SchedulerOptions::lookup)
  int64_t accepted_tokens = 0;       // so far: of those, the ones the model drew itself
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
  int64_t speculated_tokens = 0;  // proposed by speculation (SchedulerOptions::lookup)
  int64_t accepted_tokens = 0;    // of those, the ones the model drew itself
  std::vector<int64_t> replica_requests;  // data parallel: requests each replica took (else empty)
};

class RequestScheduler {
 public:
  virtual ~RequestScheduler() = default;
  // Thread-safe. On success the sink receives events until one has finished = true.
  virtual SubmitResult submit(CompletionRequest request, EventSink sink) = 0;
  // Thread-safe. The request ends at the next step (its sink gets a finished event) and frees its
  // KV blocks; cancelling an unknown or finished id does nothing.
  virtual void cancel(uint64_t id) = 0;
  virtual SchedulerStats stats() const = 0;
  // Stops taking requests; waits for running and queued ones to finish, or cancels them.
  enum class Drain { Finish, Cancel };
  virtual void shutdown(Drain how) = 0;
  // The engine whose tokenizer, config and grammar cache requests are prepared with (every
  // replica's are the same).
  virtual Engine& engine() = 0;
  // Runs `job` on a worker thread that owns an engine, between two steps, and waits for it
  // (encoder passes for /v1/embeddings). Thread-safe; false, without running it, once shutting down.
  virtual bool run_on_worker(const std::function<void(Engine&)>& job) = 0;
};

}  // namespace brisk
