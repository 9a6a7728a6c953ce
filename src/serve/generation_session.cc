#include "serve/generation_session.h"

#include <chrono>
#include <deque>
#include <mutex>

namespace brisk::serve {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

struct GenerationSession::Channel {
  struct Timing {
    double start = 0;        // submit time
    double first_token = 0;  // 0: no token yet
    double last_token = 0;
  };
  std::mutex mutex;
  std::function<void()> listener;
  std::deque<Event> events;
  std::vector<Timing> timing;  // per choice
  Metrics* metrics = nullptr;

  void push(int64_t index, const StreamEvent& event) {
    const double now = now_seconds();
    std::function<void()> notify;
    {
      std::lock_guard lock(mutex);
      Timing& t = timing[size_t(index)];
      if (!event.ids.empty()) {
        if (t.last_token == 0) {
          metrics->observe_time_to_first_token(now - t.start);
          t.first_token = now;
        } else {
          metrics->observe_inter_token(now - t.last_token, int64_t(event.ids.size()));
        }
        t.last_token = now;
      }
      if (event.finished) {
        metrics->observe_request_latency(now - t.start);
        metrics->count_tokens(event.prompt_tokens, event.completion_tokens);
      }
      events.push_back(Event{index, event});
      notify = listener;
    }
    if (notify) notify();
  }
};

GenerationSession::GenerationSession(RequestScheduler& scheduler, std::shared_ptr<Channel> channel)
    : scheduler_(scheduler), channel_(std::move(channel)) {}

ApiResult<std::shared_ptr<GenerationSession>> GenerationSession::start(RequestScheduler& scheduler,
                                                                       std::vector<CompletionRequest> requests,
                                                                       Metrics& metrics) {
  auto channel = std::make_shared<Channel>();
  channel->metrics = &metrics;
  channel->timing.resize(requests.size());
  std::shared_ptr<GenerationSession> session(new GenerationSession(scheduler, channel));
  for (size_t i = 0; i < requests.size(); ++i) {
    channel->timing[i].start = now_seconds();
    const int64_t index = int64_t(i);
    SubmitResult submitted =
        scheduler.submit(std::move(requests[i]), [channel, index](const StreamEvent& e) { channel->push(index, e); });
    if (submitted.error == SubmitError::None) {
      session->ids_.push_back(submitted.id);
      continue;
    }
    session->cancel();
    switch (submitted.error) {
      case SubmitError::QueueFull:
        return ApiError{429, "the server is busy (request queue full); retry shortly: " + submitted.message,
                        "rate_limit_error", "", "queue_full"};
      case SubmitError::PromptTooLong: {
        ApiError e = invalid_field("prompt", submitted.message);
        e.code = "context_length_exceeded";
        return e;
      }
      case SubmitError::ShuttingDown:
        return ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"};
      case SubmitError::BadRequest:
      case SubmitError::None: break;
    }
    return invalid_field("", submitted.message);
  }
  return session;
}

GenerationSession::~GenerationSession() {
  if (finished_taken_ < ids_.size()) cancel();
}

void GenerationSession::cancel() {
  cancelled_ = true;
  for (uint64_t id : ids_) scheduler_.cancel(id);
}

void GenerationSession::set_listener(std::function<void()> on_events) {
  bool waiting = false;
  {
    std::lock_guard lock(channel_->mutex);
    channel_->listener = on_events;
    waiting = !channel_->events.empty();
  }
  if (waiting) on_events();
}

double GenerationSession::time_to_first_token() const {
  std::lock_guard lock(channel_->mutex);
  double best = -1;
  for (const Channel::Timing& t : channel_->timing)
    if (t.first_token > 0 && (best < 0 || t.first_token - t.start < best)) best = t.first_token - t.start;
  return best;
}

bool GenerationSession::poll(Event& out) {
  std::lock_guard lock(channel_->mutex);
  if (channel_->events.empty()) return false;
  out = std::move(channel_->events.front());
  channel_->events.pop_front();
  if (out.event.finished) ++finished_taken_;
  return true;
}

}  // namespace brisk::serve
