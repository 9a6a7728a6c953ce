// Prometheus text exposition (version 0.0.4) of the server's counters and latency histograms,
// plus the scheduler's gauges read at scrape time. Thread-safe: handlers and the scheduler's
// worker (through event sinks) record concurrently.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/scheduler.h"
#include "serve/http_server.h"

namespace brisk::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value, int64_t count = 1);
  // Appends name_bucket{le=...}, name_sum and name_count lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  int64_t total_ = 0;
};

class Metrics {
 public:
  Metrics();

  // One finished HTTP request to a /v1 endpoint with its final status.
  void count_request(const std::string& endpoint, int status);
  void count_tokens(int64_t prompt, int64_t completion);
  void observe_time_to_first_token(double seconds) { ttft_.observe(seconds); }
  // `tokens` tokens arrived together `seconds` after the previous ones: each is one gap of
  // seconds / tokens.
  void observe_inter_token(double seconds, int64_t tokens);
  void observe_request_latency(double seconds) { e2e_.observe(seconds); }

  std::string render(const SchedulerStats& stats, const HttpServer::Counts& http) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;  // (endpoint, status) -> count
  std::atomic<int64_t> prompt_tokens_{0};
  std::atomic<int64_t> completion_tokens_{0};
  Histogram ttft_;
  Histogram inter_token_;
  Histogram e2e_;
};

}  // namespace brisk::serve
