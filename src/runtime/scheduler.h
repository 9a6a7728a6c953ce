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
#include "runtime/request_scheduler.h"
#include "runtime/speculation.h"

namespace brisk {

class KvBlocks;

struct SchedulerOptions {
  int64_t max_batch = 64;        // sequences decoded together; 1 = one request at a time
  int64_t max_queue = 1024;      // waiting requests before submit says QueueFull
  int64_t prefill_chunk = 256;   // prompt tokens per step, so decodes keep flowing
  // Speculative decoding (runtime/speculation.h) by prompt lookup (lookup > 0: its n-gram) or from
  // `draft` (a draft model, the caller's; one scheduler's alone): each decoding sequence proposes
  // up to max_draft tokens (adapted to its acceptance) checked in the same batched pass, while at
  // most speculation_max_batch sequences decode: in larger batches the pass is no longer bound by
  // reading the weights, and the checked rows cost what they save.
  int64_t lookup = 0;
  DraftSource* draft = nullptr;
  int64_t max_draft = kDefaultMaxDraft;
  int64_t speculation_max_batch = 8;
};

// The RequestScheduler of one engine (its contract: runtime/request_scheduler.h).
class Scheduler final : public RequestScheduler {
 public:
  Scheduler(Engine& engine, SchedulerOptions options);
  ~Scheduler() override;  // cancels what is left and joins the worker
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  SubmitResult submit(CompletionRequest request, EventSink sink) override;
  void cancel(uint64_t id) override;
  SchedulerStats stats() const override;
  void shutdown(Drain how) override;
  Engine& engine() override { return engine_; }
  // On the worker thread, which owns the engine.
  bool run_on_worker(const std::function<void(Engine&)>& job) override;

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
  void propose(int64_t max_rows);
  void check_proposals(Sequence& seq, const float* logits, const int32_t* ids);
  void publish_computed_blocks(Sequence& seq);
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
  std::unique_ptr<DraftSource> lookup_;  // options_.lookup's
  DraftSource* draft_ = nullptr;         // what proposes: lookup_, options_.draft or nothing
  int64_t preemptions_ = 0;
  int64_t prefix_blocks_reused_ = 0;
  int64_t speculated_tokens_ = 0, accepted_tokens_ = 0;
  std::vector<float> row_;  // one logits row for the sampler
  std::thread worker_;
};

}  // namespace brisk
