// Data parallelism (issue 23, `brisk serve --dp N`): N replicas of one model, each its own engine
// and Scheduler (its own device, or its own share of the CPU threads), behind one server. Each
// request goes to the replica with the fewest requests in flight (submitted, not yet finished),
// except that a prompt beginning like an earlier one goes where that one went while that replica
// has at most kAffinitySlack more in flight than the least busy: its prefix cache holds the
// shared blocks there.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/scheduler.h"

namespace brisk {

class ReplicaRouter final : public RequestScheduler {
 public:
  // The prompt tokens whose hash keys affinity (whole KV blocks: what a prefix cache can share).
  static constexpr int64_t kAffinityTokens = 4 * KvCache::kBlockSize;
  static constexpr int64_t kAffinitySlack = 4;
  static constexpr size_t kAffinityEntries = 4096;  // prefixes remembered, oldest forgotten first

  // The replicas' engines must outlive the router; schedulers are made here, one per engine.
  // drafts: each replica's own draft model (options.draft then stays null: a draft model's cache
  // serves one scheduler), or empty.
  ReplicaRouter(const std::vector<Engine*>& engines, SchedulerOptions options, const std::vector<DraftSource*>& drafts = {});
  ~ReplicaRouter() override;

  // Ids are the replica's own id x replicas + the replica index.
  SubmitResult submit(CompletionRequest request, EventSink sink) override;
  void cancel(uint64_t id) override;
  SchedulerStats stats() const override;  // summed over the replicas
  void shutdown(Drain how) override;
  Engine& engine() override { return replicas_.front()->engine(); }
  bool run_on_worker(const std::function<void(Engine&)>& job) override;  // on the least busy replica

  int64_t replicas() const { return int64_t(replicas_.size()); }
  int64_t replica_of(uint64_t id) const { return int64_t(id % replicas_.size()); }
  int64_t in_flight(int64_t replica) const { return in_flight_[size_t(replica)]->load(); }

 private:
  size_t least_busy() const;
  // The replica for a prompt, and the affinity entry it leaves.
  size_t route(const std::vector<int32_t>& prompt);

  std::vector<std::unique_ptr<Scheduler>> replicas_;
  std::vector<std::unique_ptr<std::atomic<int64_t>>> in_flight_, taken_;  // per replica
  std::mutex affinity_mutex_;
  std::unordered_map<uint64_t, size_t> affinity_;  // prefix hash -> replica that last took it
  std::deque<uint64_t> affinity_order_;            // insertion order, for forgetting
};

}  // namespace brisk
