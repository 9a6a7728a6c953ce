#include "runtime/replica_router.h"

#include <algorithm>

#include "runtime/kv_blocks.h"

namespace brisk {

namespace {

// The prefix cache's own chain hash (KvBlocks::chain_hash) of the first kAffinityTokens prompt
// tokens; 0 (no affinity) for shorter prompts.
uint64_t prefix_hash(const std::vector<int32_t>& prompt) {
  if (int64_t(prompt.size()) < ReplicaRouter::kAffinityTokens) return 0;
  uint64_t h = 0;
  for (int64_t at = 0; at < ReplicaRouter::kAffinityTokens; at += KvCache::kBlockSize)
    h = KvBlocks::chain_hash(h, prompt.data() + at, KvCache::kBlockSize);
  return h == 0 ? 1 : h;
}

}  // namespace

ReplicaRouter::ReplicaRouter(const std::vector<Engine*>& engines, SchedulerOptions options,
                             const std::vector<DraftSource*>& drafts) {
  BRISK_CHECK(!engines.empty(), "ReplicaRouter: no replicas");
  BRISK_CHECK(!options.draft && (drafts.empty() || drafts.size() == engines.size()),
              "ReplicaRouter: one draft source per replica");
  for (size_t i = 0; i < engines.size(); ++i) {
    options.draft = drafts.empty() ? nullptr : drafts[i];
    replicas_.push_back(std::make_unique<Scheduler>(*engines[i], options));
    in_flight_.push_back(std::make_unique<std::atomic<int64_t>>(0));
    taken_.push_back(std::make_unique<std::atomic<int64_t>>(0));
  }
}

ReplicaRouter::~ReplicaRouter() = default;  // each Scheduler cancels what is left and joins

size_t ReplicaRouter::least_busy() const {
  size_t best = 0;
  for (size_t r = 1; r < replicas_.size(); ++r)
    if (in_flight_[r]->load() < in_flight_[best]->load()) best = r;
  return best;
}

size_t ReplicaRouter::route(const std::vector<int32_t>& prompt) {
  const size_t idle = least_busy();
  const uint64_t key = prefix_hash(prompt);
  if (key == 0) return idle;
  std::lock_guard<std::mutex> lock(affinity_mutex_);
  auto it = affinity_.find(key);
  if (it != affinity_.end() && in_flight_[it->second]->load() <= in_flight_[idle]->load() + kAffinitySlack)
    return it->second;
  if (it == affinity_.end()) {
    affinity_order_.push_back(key);
    if (affinity_order_.size() > kAffinityEntries) {
      affinity_.erase(affinity_order_.front());
      affinity_order_.pop_front();
    }
  }
  affinity_[key] = idle;
  return idle;
}

SubmitResult ReplicaRouter::submit(CompletionRequest request, EventSink sink) {
  const size_t r = route(request.prompt);
  std::atomic<int64_t>& in_flight = *in_flight_[r];
  ++in_flight;
  SubmitResult result = replicas_[r]->submit(std::move(request), [&in_flight, sink = std::move(sink)](const StreamEvent& e) {
    if (e.finished) --in_flight;
    sink(e);
  });
  if (result.error != SubmitError::None) {
    --in_flight;
    return result;
  }
  ++*taken_[r];
  result.id = result.id * replicas_.size() + r;
  return result;
}

void ReplicaRouter::cancel(uint64_t id) {
  replicas_[size_t(replica_of(id))]->cancel(id / replicas_.size());
}

SchedulerStats ReplicaRouter::stats() const {
  SchedulerStats sum;
  for (size_t r = 0; r < replicas_.size(); ++r) {
    const SchedulerStats s = replicas_[r]->stats();
    sum.replica_requests.push_back(taken_[r]->load());
    sum.queued += s.queued;
    sum.running += s.running;
    sum.kv_blocks_used += s.kv_blocks_used;
    sum.kv_blocks_free += s.kv_blocks_free;
    sum.preemptions += s.preemptions;
    sum.prefix_blocks_reused += s.prefix_blocks_reused;
    sum.speculated_tokens += s.speculated_tokens;
    sum.accepted_tokens += s.accepted_tokens;
  }
  return sum;
}

void ReplicaRouter::shutdown(Drain how) {
  for (auto& replica : replicas_) replica->shutdown(how);
}

bool ReplicaRouter::run_on_worker(const std::function<void(Engine&)>& job) {
  return replicas_[least_busy()]->run_on_worker(job);
}

}  // namespace brisk
