// The scheduler requests behind one HTTP request (n choices per prompt) and the one queue their
// events land in. The scheduler's worker pushes (never blocks); the HTTP thread pops and writes.
// Latency metrics are taken here, from the time each event reaches its sink.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/scheduler.h"
#include "serve/api_error.h"
#include "serve/metrics.h"

namespace brisk::serve {

class GenerationSession {
 public:
  struct Event {
    int64_t index;  // which choice
    StreamEvent event;
  };

  // Submits every request; if the scheduler refuses one, cancels those already submitted and
  // returns the refusal as an ApiError (429 with Retry-After for a full queue). Shared: a hang-up
  // callback on another thread may hold it while it cancels.
  static ApiResult<std::shared_ptr<GenerationSession>> start(Scheduler& scheduler,
                                                             std::vector<CompletionRequest> requests,
                                                             Metrics& metrics);
  ~GenerationSession();  // cancels the choices still running

  // Blocks for the next event; false once every choice has finished and its events were taken.
  bool next(Event& out);
  // Thread-safe and idempotent: every unfinished choice ends at the scheduler's next step.
  void cancel();
  bool cancelled() const { return cancelled_; }
  size_t choices() const { return ids_.size(); }

 private:
  struct Channel;
  GenerationSession(Scheduler& scheduler, std::shared_ptr<Channel> channel);

  Scheduler& scheduler_;
  std::shared_ptr<Channel> channel_;  // shared with the sinks, which may outlive this session
  std::vector<uint64_t> ids_;
  size_t finished_taken_ = 0;
  std::atomic<bool> cancelled_{false};
};

}  // namespace brisk::serve
