// Test helper: greedy requests on a real model, the tokens each prompt gets alone, and a check
// that a RequestScheduler gives every request those same tokens (tests/scheduler_test.cc on the CPU,
// tests/cuda_runtime_test.cc on the GPU).
#pragma once

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/scheduler.h"

namespace brisk::greedy_requests {

inline SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// Collects one request's events; wait() returns once the finished event arrived.
struct Collector {
  std::mutex mutex;
  std::condition_variable done_cv;
  std::vector<int32_t> ids;
  std::string text, error;
  bool done = false;
  StopReason reason = StopReason::Length;

  EventSink sink() {
    return [this](const StreamEvent& e) {
      std::lock_guard<std::mutex> lock(mutex);
      ids.insert(ids.end(), e.ids.begin(), e.ids.end());
      text += e.text;
      if (e.finished) {
        done = true;
        reason = e.reason;
        error = e.error;
        done_cv.notify_all();
      }
    };
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex);
    done_cv.wait(lock, [&] { return done; });
  }
};

inline const std::vector<std::string> kPrompts = {
    "The state of the union is",
    "My fellow Americans, tonight",
    "We will build",
    "Congress must act to",
    "In the year ahead, our economy",
    "Freedom",
};

inline std::vector<std::vector<int32_t>> solo_results(Engine& engine, int64_t n_new) {
  std::vector<std::vector<int32_t>> out;
  for (const std::string& p : kPrompts) {
    GenerateRequest r;
    r.prompt = p;
    r.max_new_tokens = n_new;
    r.sampling = greedy();
    r.stop_at_eos = false;
    auto result = engine.generate(r);
    EXPECT_TRUE(result.ok());
    out.push_back(result->ids);
  }
  return out;
}

// Every prompt submitted at once to `scheduler` gets `want` (solo_results); returns the ids.
inline std::vector<uint64_t> expect_scheduled_equals_solo(RequestScheduler& scheduler, const std::vector<std::vector<int32_t>>& want,
                                                          int64_t n_new) {
  Engine& engine = scheduler.engine();
  std::vector<Collector> got(kPrompts.size());
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    CompletionRequest r;
    r.prompt = engine.tokenizer().encode(kPrompts[i], AddSpecial::Yes);
    r.max_new_tokens = n_new;
    r.sampling = greedy();
    r.stop_at_eos = false;
    const SubmitResult submitted = scheduler.submit(r, got[i].sink());
    EXPECT_EQ(submitted.error, SubmitError::None) << submitted.message;
    ids.push_back(submitted.id);
  }
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    got[i].wait();
    EXPECT_EQ(got[i].error, "");
    EXPECT_EQ(got[i].ids, want[i]) << "request " << i << ": " << kPrompts[i];
  }
  return ids;
}

inline void expect_batched_equals_solo(Engine& engine, const SchedulerOptions& options, int64_t n_new,
                                       int64_t* preemptions = nullptr, SchedulerStats* stats = nullptr) {
  const auto want = solo_results(engine, n_new);
  Scheduler scheduler(engine, options);
  expect_scheduled_equals_solo(scheduler, want, n_new);
  if (preemptions) *preemptions = scheduler.stats().preemptions;
  if (stats) *stats = scheduler.stats();
}

}  // namespace brisk::greedy_requests
