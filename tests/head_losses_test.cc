// The fast head losses (train/head_losses.h) against the scalar references they stand for
// (ref::cross_entropy_head, ref::distillation_head): cross-entropy alone, forward and reverse KL,
// odd sizes (a partial last chunk, ignored targets, widths that differ between the two models).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "golden_fixture.h"
#include "train/head_losses.h"

namespace brisk::train {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(HeadLosses, EqualTheReferences) {
  ThreadPool pool(2);
  std::mt19937 rng(17);
  const int64_t tokens = 37, d = 24, td = 40, vocab = 301;
  const std::vector<float> h = random_vector(size_t(tokens * d), rng, 1.0f), w = random_vector(size_t(vocab * d), rng, 0.3f);
  const std::vector<float> th = random_vector(size_t(tokens * td), rng, 1.0f), tw = random_vector(size_t(vocab * td), rng, 0.3f);
  std::vector<int32_t> targets(static_cast<size_t>(tokens));
  for (int64_t i = 0; i < tokens; ++i) targets[size_t(i)] = i % 7 == 3 ? -1 : int32_t(rng() % uint32_t(vocab));
  struct Case {
    double alpha, temperature;
    ref::KlDirection direction;
  };
  for (const Case& c : {Case{0.0, 1.0, ref::KlDirection::Forward}, Case{0.5, 2.0, ref::KlDirection::Forward},
                        Case{0.7, 1.5, ref::KlDirection::Reverse}}) {
    std::vector<float> dh(size_t(tokens * d)), dw(size_t(vocab * d), 0.25f), want_dh(dh.size()), want_dw(dw);
    const HeadSide student{h.data(), w.data(), d}, teacher{th.data(), tw.data(), td};
    HeadLossOptions o;
    o.alpha = c.alpha, o.temperature = c.temperature, o.direction = c.direction, o.chunk = 64;
    const ref::DistillationLoss got = head_loss(student, &teacher, tokens, vocab, targets.data(), o, dh.data(), dw.data(), pool);
    ref::DistillationLoss want;
    if (c.alpha == 0) {
      want.cross_entropy = want.total =
          ref::cross_entropy_head(h.data(), tokens, d, w.data(), vocab, targets.data(), 64, want_dh.data(), want_dw.data());
    } else {
      want = ref::distillation_head(h.data(), w.data(), d, th.data(), tw.data(), td, tokens, vocab, targets.data(), 64,
                                    c.alpha, c.temperature, c.direction, want_dh.data(), want_dw.data());
    }
    const std::string name = "alpha " + std::to_string(c.alpha);
    EXPECT_NEAR(got.total, want.total, 1e-6 * std::fabs(want.total)) << name;
    EXPECT_NEAR(got.cross_entropy, want.cross_entropy, 1e-6 * std::fabs(want.cross_entropy)) << name;
    EXPECT_NEAR(got.kl, want.kl, 1e-6 * std::fabs(want.kl) + 1e-12) << name;
    EXPECT_LT(golden::relative_l2(dh, want_dh), 1e-5) << name;
    EXPECT_LT(golden::relative_l2(dw, want_dw), 1e-5) << name;  // added to the 0.25 both started from
    // The loss alone.
    const ref::DistillationLoss alone = head_loss(student, &teacher, tokens, vocab, targets.data(), o, nullptr, nullptr, pool);
    EXPECT_EQ(alone.total, got.total) << name;
  }
}

}  // namespace
}  // namespace brisk::train
