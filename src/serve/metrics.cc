#include "serve/metrics.h"

#include <cstdio>

namespace brisk::serve {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void gauge(std::string& out, const char* name, const char* help, double value) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + number(value) + "\n";
}

void counter(std::string& out, const char* name, const char* help, int64_t value) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " +
         std::to_string(value) + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value, int64_t count) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  std::lock_guard lock(mutex_);
  counts_[bucket] += count;
  sum_ += value * double(count);
  total_ += count;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(total_) + "\n";
  out += name + "_sum " + number(sum_) + "\n";
  out += name + "_count " + std::to_string(total_) + "\n";
}

// Bucket edges span a tiny CPU model's sub-millisecond steps up to queueing delays of a minute.
Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      inter_token_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      e2e_({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::count_tokens(int64_t prompt, int64_t completion) {
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
}

void Metrics::observe_inter_token(double seconds, int64_t tokens) {
  if (tokens > 0) inter_token_.observe(seconds / double(tokens), tokens);
}

std::string Metrics::render(const SchedulerStats& stats, const HttpServer::Counts& http) const {
  std::string out;
  out += "# HELP brisk_requests_total HTTP requests to the /v1 endpoints by final status.\n"
         "# TYPE brisk_requests_total counter\n";
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, count] : requests_)
      out += "brisk_requests_total{endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
             std::to_string(count) + "\n";
  }
  counter(out, "brisk_prompt_tokens_total", "Prompt tokens of accepted requests.", prompt_tokens_.load());
  counter(out, "brisk_generation_tokens_total", "Tokens generated.", completion_tokens_.load());
  ttft_.render(out, "brisk_time_to_first_token_seconds", "From request arrival to its first generated token.");
  inter_token_.render(out, "brisk_inter_token_latency_seconds", "Gap between successive generated tokens of a request.");
  e2e_.render(out, "brisk_request_latency_seconds", "From request arrival to its last token.");
  gauge(out, "brisk_queue_depth", "Requests waiting for a slot in the running batch.", double(stats.queued));
  gauge(out, "brisk_running_batch", "Sequences in the running batch.", double(stats.running));
  gauge(out, "brisk_kv_blocks_used", "KV cache blocks in use.", double(stats.kv_blocks_used));
  gauge(out, "brisk_kv_blocks_free", "KV cache blocks free.", double(stats.kv_blocks_free));
  gauge(out, "brisk_http_connections", "Open HTTP connections, idle keep-alive ones included.", double(http.open_connections));
  gauge(out, "brisk_http_requests_in_progress", "Requests read and not yet fully answered.", double(http.requests_in_progress));
  counter(out, "brisk_preemptions_total", "Sequences requeued because KV memory ran out.", stats.preemptions);
  counter(out, "brisk_prefix_cache_blocks_reused_total", "KV blocks taken from the prefix cache instead of computed.",
          stats.prefix_blocks_reused);
  counter(out, "brisk_speculated_tokens_total", "Tokens proposed by speculative decoding (--lookup).",
          stats.speculated_tokens);
  counter(out, "brisk_speculated_tokens_accepted_total", "Proposed tokens the model drew itself.", stats.accepted_tokens);
  if (!stats.replica_requests.empty()) {
    out += "# HELP brisk_replica_requests_total Requests each replica took (serve --dp).\n"
           "# TYPE brisk_replica_requests_total counter\n";
    for (size_t r = 0; r < stats.replica_requests.size(); ++r)
      out += "brisk_replica_requests_total{replica=\"" + std::to_string(r) + "\"} " +
             std::to_string(stats.replica_requests[r]) + "\n";
  }
  return out;
}

}  // namespace brisk::serve
