// Data parallelism (runtime/replica_router.h) on two real replicas of sotu-llama (CPU, one thread
// each): requests submitted together are spread over both and each gets the tokens it gets alone;
// prompts that share their first blocks follow each other while the loads allow; ids cancel on the
// replica that holds them.
#include "runtime/replica_router.h"

#include <gtest/gtest.h>

#include <set>

#include "greedy_requests.h"

namespace brisk {
namespace {

using namespace greedy_requests;

std::vector<std::unique_ptr<Engine>> open_replicas(int64_t n) {
  std::vector<std::unique_ptr<Engine>> engines;
  for (int64_t i = 0; i < n; ++i) {
    EngineOptions options;
    options.model_dir = std::string(BRISK_SHARED_DIR) + "/models/sotu-llama";
    options.backend.threads = 1;
    options.context = 512;
    auto engine = Engine::open(options);
    EXPECT_TRUE(engine.ok()) << engine.error().message;
    engines.push_back(std::move(engine).value());
  }
  return engines;
}

std::vector<Engine*> pointers(const std::vector<std::unique_ptr<Engine>>& engines) {
  std::vector<Engine*> out;
  for (const auto& e : engines) out.push_back(e.get());
  return out;
}

CompletionRequest greedy_request(const Engine& engine, const std::string& prompt, int64_t n_new) {
  CompletionRequest r;
  r.prompt = engine.tokenizer().encode(prompt, AddSpecial::Yes);
  r.max_new_tokens = n_new;
  r.sampling = greedy();
  r.stop_at_eos = false;
  return r;
}

TEST(ReplicaRouter, SpreadsRequestsAndKeepsTheirTokens) {
  auto engines = open_replicas(2);
  const auto want = solo_results(*engines[0], 16);
  ReplicaRouter router(pointers(engines), {});
  const std::vector<uint64_t> ids = expect_scheduled_equals_solo(router, want, 16);
  // Six short prompts (no affinity) at once: in-flight counts alternate the replicas.
  std::vector<int64_t> per_replica(2, 0);
  for (uint64_t id : ids) ++per_replica[size_t(router.replica_of(id))];
  EXPECT_EQ(per_replica, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(router.in_flight(0) + router.in_flight(1), 0);
  EXPECT_EQ(router.stats().replica_requests, (std::vector<int64_t>{3, 3}));
}

TEST(ReplicaRouter, SharedPrefixesFollowEachOtherWhileLoadAllows) {
  auto engines = open_replicas(2);
  ReplicaRouter router(pointers(engines), {});
  const std::string shared(300, 'a');  // more than kAffinityTokens tokens
  ASSERT_GE(int64_t(engines[0]->tokenizer().encode(shared, AddSpecial::Yes).size()), ReplicaRouter::kAffinityTokens);
  // Eight requests of the shared prefix at once: the first goes to replica 1, the following stay
  // there while it holds at most kAffinitySlack more than replica 0, then the rest spill over.
  std::vector<Collector> got(8);
  std::vector<CompletionRequest> requests;  // tokenized first: the submissions follow each other closely
  for (size_t i = 0; i < got.size(); ++i) requests.push_back(greedy_request(*engines[0], shared + " tail " + std::to_string(i), 8));
  // Something else first, so the shared prefix's first request lands on the idle replica 1.
  Collector busy;
  const SubmitResult first = router.submit(greedy_request(*engines[0], "Freedom", 400), busy.sink());
  ASSERT_EQ(first.error, SubmitError::None);
  EXPECT_EQ(router.replica_of(first.id), 0);
  std::vector<int64_t> replica;
  for (size_t i = 0; i < got.size(); ++i) {
    const SubmitResult r = router.submit(requests[i], got[i].sink());
    ASSERT_EQ(r.error, SubmitError::None);
    replica.push_back(router.replica_of(r.id));
  }
  router.cancel(first.id);
  busy.wait();
  EXPECT_EQ(busy.error, "cancelled");  // the id reached the replica that holds it
  EXPECT_LT(busy.ids.size(), 400u);
  for (Collector& c : got) c.wait();
  const std::vector<int64_t> expected_start(size_t(ReplicaRouter::kAffinitySlack + 2), 1);
  EXPECT_EQ(std::vector<int64_t>(replica.begin(), replica.begin() + int64_t(expected_start.size())), expected_start);
  EXPECT_TRUE(std::set<int64_t>(replica.begin(), replica.end()).count(0)) << "no request spilled over";
  // Idle again: the prefix's next request returns to the replica that last took it.
  Collector again;
  const SubmitResult next = router.submit(greedy_request(*engines[0], shared + " once more", 4), again.sink());
  again.wait();
  EXPECT_EQ(router.replica_of(next.id), replica.back());
}

}  // namespace
}  // namespace brisk
