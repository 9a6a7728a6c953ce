// Sampler and stop-string behaviour on hand-made logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "ops/reference.h"
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

TEST(Sampler, LogitBiasShiftsGreedyAndSampledChoices) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, -1.0f};
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.logit_bias = {{0, -100.0f}, {3, 2.5f}};  // ban the best; lift the worst to 1.5
  EXPECT_FALSE(greedy.plain_greedy());
  Sampler s(greedy, 4);
  std::vector<float> row = logits;
  EXPECT_EQ(s.sample(row.data()), 3);
  // A biased token is not in the context: the repetition penalty leaves it alone.
  SamplingParams repeat = greedy;
  repeat.repetition_penalty = 10.0f;
  repeat.logit_bias = {{1, 0.75f}};  // 1.75 beats 2.0 / 10 only if token 0 alone is penalized
  Sampler r(repeat, 4);
  r.add_prompt({0});
  row = logits;
  EXPECT_EQ(r.sample(row.data()), 1);
  // Sampled: a +100 bias takes every draw.
  SamplingParams hot;
  hot.temperature = 1.0f;
  hot.top_k = 0;
  hot.top_p = 1.0f;
  hot.min_p = 0.0f;
  hot.logit_bias = {{2, 100.0f}};
  for (uint64_t seed = 0; seed < 50; ++seed) {
    hot.seed = seed;
    Sampler h(hot, 4);
    row = logits;
    EXPECT_EQ(h.sample(row.data()), 2);
  }
}

// Random123's known-answer vectors for Philox-4x32-10 (tests/kat_vectors there).
TEST(Philox, MatchesTheKnownAnswers) {
  struct Case {
    sampling::Philox4 counter;
    uint32_t key0, key1;
    sampling::Philox4 want;
  };
  const Case cases[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Case& c : cases) {
    const sampling::Philox4 got = sampling::philox4x32_10(c.counter, c.key0, c.key1);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got.v[i], c.want.v[i]) << "word " << i;
  }
}

// ops/sampling.h's definition read literally (every survivor rule by counting over the whole row,
// O(vocab^2)), against the reference's sort and nth_element.
int32_t literal_sample(std::vector<float> l, const SampleRowParams& p, const std::vector<TokenCount>& counts) {
  const int64_t vocab = int64_t(l.size());
  for (int32_t i = 0; i < p.n_counts; ++i) {
    const TokenCount& c = counts[size_t(p.first_count + i)];
    l[size_t(c.token)] = sampling::penalized_logit(l[size_t(c.token)], c, p);
  }
  const int64_t best = std::max_element(l.begin(), l.end()) - l.begin();
  const float max_logit = l[size_t(best)];
  if (p.temperature <= 0) return int32_t(best);
  auto z = [&](int64_t i) { return sampling::scaled_logit(l[size_t(i)], max_logit, p.temperature); };
  auto in_top_k = [&](int64_t i) {
    if (!sampling::top_k_active(p.top_k, vocab)) return true;
    int64_t greater = 0;
    for (int64_t j = 0; j < vocab; ++j) greater += l[size_t(j)] > l[size_t(i)];
    return greater < p.top_k;
  };
  std::vector<bool> top_k(static_cast<size_t>(vocab));
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i)
    if ((top_k[size_t(i)] = in_top_k(i))) total += double(expf(z(i)));
  int32_t chosen = -1;
  float best_score = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) {
    if (!top_k[size_t(i)] || !sampling::passes_min_p(z(i), p.min_p)) continue;
    double above = 0;
    for (int64_t j = 0; j < vocab; ++j)
      if (top_k[size_t(j)] && l[size_t(j)] > l[size_t(i)]) above += double(expf(z(j)));
    const bool in_top_p = p.top_p >= 1.0f || (p.top_p > 0.0f ? above < double(p.top_p) * total
                                                             : l[size_t(i)] == max_logit);
    if (!in_top_p) continue;
    const float score = z(i) + sampling::gumbel_noise(p.seed, p.step, i);
    if (score > best_score) best_score = score, chosen = int32_t(i);
  }
  return chosen;
}

TEST(SampleRow, ReferenceFollowsTheLiteralDefinition) {
  std::mt19937 rng(99);
  std::vector<float> scratch;
  for (int trial = 0; trial < 600; ++trial) {
    const int64_t vocab = 1 + int64_t(rng() % 120);
    std::vector<float> logits(static_cast<size_t>(vocab));
    std::normal_distribution<float> normal(0.0f, 2.0f);
    // Quarter steps make ties common: equal logits must stay or go together.
    for (float& x : logits) x = std::round(normal(rng) * 4.0f) / 4.0f;
    if (trial % 7 == 0) logits[0] = -INFINITY;
    std::vector<TokenCount> counts = {{0, 0}};  // an entry of another row, to test first_count
    SampleRowParams p;
    p.seed = rng();
    p.step = rng() % 50;
    const float temperatures[] = {0.0f, 0.5f, 1.0f, 1.7f};
    p.temperature = temperatures[rng() % 4];
    p.top_k = int32_t(rng() % (vocab + 2)) - 1;
    p.top_p = rng() % 3 == 0 ? 1.0f : float(rng() % 101) / 100.0f;
    p.min_p = rng() % 2 == 0 ? 0.0f : float(rng() % 50) / 100.0f;
    p.repetition_penalty = rng() % 2 == 0 ? 1.0f : 1.5f;
    p.presence_penalty = rng() % 2 == 0 ? 0.0f : 0.4f;
    p.frequency_penalty = rng() % 2 == 0 ? 0.0f : 0.3f;
    p.first_count = 1;
    // Penalized tokens, biased ones, and both (logit_bias entries sit in the same list).
    const float biases[] = {0.0f, 0.0f, 1.5f, -100.0f, 100.0f};
    for (int64_t t = 1; t < vocab; t += 1 + int64_t(rng() % 5)) {
      const int32_t in_context = int32_t(rng() % 3 != 0);
      counts.push_back({int32_t(t), in_context ? int32_t(rng() % 3) : 0, in_context, biases[rng() % 5]});
    }
    p.n_counts = int32_t(counts.size()) - 1;
    std::vector<float> row = logits;
    EXPECT_EQ(ref::sample_row(row.data(), vocab, p, counts.data(), nullptr, scratch), literal_sample(logits, p, counts))
        << "trial " << trial << ": vocab=" << vocab << " temperature=" << p.temperature << " top_k=" << p.top_k
        << " top_p=" << p.top_p << " min_p=" << p.min_p;
  }
}

// A Sampler's host draws equal the backend op fed with its row_params() and counts(), step after
// step with penalties growing: the packing the device path uses loses nothing.
TEST(SampleRow, SamplerAgreesWithTheBackendOp) {
  SamplingParams params;
  params.temperature = 0.9f;
  params.top_k = 20;
  params.top_p = 0.9f;
  params.min_p = 0.02f;
  params.repetition_penalty = 1.2f;
  params.presence_penalty = 0.3f;
  params.frequency_penalty = 0.2f;
  params.seed = 1234;
  const int64_t vocab = 300;
  Sampler host(params, vocab), device(params, vocab);
  host.add_prompt({3, 4, 5, 250});
  device.add_prompt({3, 4, 5, 250});
  CpuBackend backend(1);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int step = 0; step < 200; ++step) {
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (float& x : logits) x = normal(rng);
    std::vector<float> row = logits;
    const SampleRowParams p = device.row_params(0);
    int32_t id = -1;
    backend.sample_rows(row.data(), 1, vocab, &p, device.counts().data(), nullptr, &id);
    device.accept(id);
    EXPECT_EQ(host.sample(logits.data()), id) << "step " << step;
    EXPECT_EQ(logits, row) << "step " << step;  // the same penalties, in place
  }
}

TEST(SampleRow, StepsAndSeedsGiveDifferentDraws) {
  SampleRowParams p;
  p.temperature = 1.0f;
  const std::vector<float> flat(1000, 0.0f);
  std::vector<float> scratch, row;
  std::map<int32_t, int> seen;
  for (uint64_t seed = 0; seed < 10; ++seed)
    for (uint64_t step = 0; step < 10; ++step) {
      p.seed = seed;
      p.step = step;
      row = flat;
      ++seen[ref::sample_row(row.data(), 1000, p, nullptr, nullptr, scratch)];
    }
  EXPECT_GT(seen.size(), 80u);  // 100 uniform draws from 1000 tokens rarely collide
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
