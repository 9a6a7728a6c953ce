// The scheduler requests behind one HTTP request (n choices per prompt) and the one queue their
// events land in. The scheduler's worker pushes (never blocks) and calls the listener; the
// listener arranges for the HTTP side to poll (no thread waits for events). Latency metrics are
// taken here, from the time each event reaches its sink.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "runtime/request_scheduler.h"
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
  static ApiResult<std::shared_ptr<GenerationSession>> start(RequestScheduler& scheduler,
                                                             std::vector<CompletionRequest> requests,
                                                             Metrics& metrics);
  ~GenerationSession();  // cancels the choices still running

  // `on_events` runs (on the scheduler's thread, so it must be quick) after events arrive; at
  // once if some are already waiting. Set once.
  void set_listener(std::function<void()> on_events);
  // The next event without waiting; false when none is waiting.
  bool poll(Event& out);
  // Every choice has finished and its last event was taken.
  bool done() const { return finished_taken_ == ids_.size(); }
  // Submit to first token of the quickest choice; -1 before any token.
  double time_to_first_token() const;
  // Thread-safe and idempotent: every unfinished choice ends at the scheduler's next step.
  void cancel();
  bool cancelled() const { return cancelled_; }
  size_t choices() const { return ids_.size(); }

 private:
  struct Channel;
  GenerationSession(RequestScheduler& scheduler, std::shared_ptr<Channel> channel);

  RequestScheduler& scheduler_;
  std::shared_ptr<Channel> channel_;  // shared with the sinks, which may outlive this session
  std::vector<uint64_t> ids_;
  size_t finished_taken_ = 0;
  std::atomic<bool> cancelled_{false};
};

}  // namespace brisk::serve
