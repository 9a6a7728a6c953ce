// Sampler and stop-string behaviour on hand-made logits.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "runtime/sampler.h"
#include "runtime/stop_matcher.h"

namespace brisk {
namespace {

std::vector<float> logits_from_probs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double v : p) l.push_back(float(std::log(v)));
  return l;
}

std::map<int32_t, int> histogram(SamplingParams params, const std::vector<double>& probs, int draws) {
  Sampler sampler(params, int64_t(probs.size()));
  std::map<int32_t, int> counts;
  for (int i = 0; i < draws; ++i) {
    auto l = logits_from_probs(probs);
    ++counts[sampler.sample(l.data())];
  }
  return counts;
}

const std::vector<double> kProbs = {0.05, 0.5, 0.3, 0.1, 0.05};

TEST(Sampler, GreedyIsArgmax) {
  SamplingParams p;
  p.temperature = 0;
  auto counts = histogram(p, kProbs, 20);
  EXPECT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts.begin()->first, 1);
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  p.top_p = 1.0f;
  p.min_p = 0;
  EXPECT_EQ(histogram(p, kProbs, 50), (std::map<int32_t, int>{{1, 50}}));
}

TEST(Sampler, FollowsTheDistribution) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  p.seed = 3;
  const int draws = 20000;
  auto counts = histogram(p, kProbs, draws);
  for (size_t i = 0; i < kProbs.size(); ++i)
    EXPECT_NEAR(double(counts[int32_t(i)]) / draws, kProbs[i], 0.015) << "token " << i;
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 0.75f;  // 0.5 + 0.3 reaches it: tokens 1 and 2 only
  p.min_p = 0;
  auto counts = histogram(p, kProbs, 2000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], counts[2]);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // keeps p >= 0.25: tokens 1 and 2
  auto counts = histogram(p, kProbs, 2000);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_TRUE(counts.count(1) && counts.count(2));
}

TEST(Sampler, SameSeedSameSequence) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  EXPECT_EQ(histogram(p, kProbs, 200), histogram(p, kProbs, 200));
}

TEST(Sampler, RepetitionPenaltyFollowsTransformers) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler sampler(p, 3);
  sampler.add_prompt({0, 2});
  std::vector<float> l = {1.0f, 0.9f, -1.0f};
  sampler.sample(l.data());
  EXPECT_FLOAT_EQ(l[0], 0.5f);   // positive logits divided
  EXPECT_FLOAT_EQ(l[1], 0.9f);   // unseen: untouched
  EXPECT_FLOAT_EQ(l[2], -2.0f);  // negative logits multiplied
}

TEST(Sampler, PresenceAndFrequencyPenaltiesCountOutputTokens) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.3f;
  Sampler sampler(p, 2);
  std::vector<float> l = {1.0f, 0.0f};
  EXPECT_EQ(sampler.sample(l.data()), 0);  // first pick: no penalty yet
  l = {1.0f, 0.0f};
  EXPECT_EQ(sampler.sample(l.data()), 0);  // 1 - 0.5 - 0.3 = 0.2 > 0
  EXPECT_FLOAT_EQ(l[0], 0.2f);
  l = {1.0f, 0.0f};
  EXPECT_EQ(sampler.sample(l.data()), 1);  // 1 - 0.5 - 0.6 < 0
}

TEST(StopMatcher, HoldsBackPossibleStopPrefix) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.push("hello E"), "hello ");
  EXPECT_EQ(m.push("N"), "");
  EXPECT_EQ(m.push("X more"), "ENX more");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push(" E"), " ");
  EXPECT_EQ(m.push("ND tail"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, CutsBeforeTheEarliestStop) {
  StopMatcher m({"b", "xyz"});
  EXPECT_EQ(m.push("aaxyzab"), "aa");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, FlushReturnsHeldText) {
  StopMatcher m({"stop"});
  EXPECT_EQ(m.push("go st"), "go ");
  EXPECT_EQ(m.flush(), "st");
}

}  // namespace
}  // namespace brisk
