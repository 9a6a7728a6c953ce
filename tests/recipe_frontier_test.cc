// brisk optimize's solver against brute force: on random instances (some options missing), the
// Pareto frontier answers every budget exactly as enumerating all recipes does.
#include "optimize/recipe_frontier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace brisk::recipe {
namespace {

using Options = std::vector<std::vector<std::optional<Option>>>;

Options random_instance(std::mt19937& rng, int groups, int candidates) {
  std::uniform_real_distribution<double> cost(0.0, 10.0), damage(0.0, 1.0);
  std::bernoulli_distribution missing(0.2);
  Options o;
  o.assign(size_t(groups), std::vector<std::optional<Option>>(static_cast<size_t>(candidates)));
  for (auto& g : o) {
    g[0] = Option{cost(rng), 0.0};  // keep: always there, no damage
    for (size_t c = 1; c < g.size(); ++c)
      if (!missing(rng)) g[c] = Option{std::round(cost(rng)), damage(rng)};  // rounded: ties in cost happen
  }
  return o;
}

// Every recipe's (cost, damage), by enumeration.
std::vector<Option> all_recipes(const Options& o) {
  std::vector<Option> out = {Option{}};
  for (const auto& g : o) {
    std::vector<Option> next;
    for (const Option& p : out)
      for (const auto& c : g)
        if (c) next.push_back({p.cost + c->cost, p.damage + c->damage});
    out = next;
  }
  return out;
}

TEST(RecipeFrontier, AnswersEveryBudgetAsBruteForce) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    const Options o = random_instance(rng, 2 + trial % 5, 2 + trial % 4);
    const std::vector<FrontierPoint> f = pareto_frontier(o);
    const std::vector<Option> all = all_recipes(o);
    ASSERT_FALSE(f.empty());
    for (size_t i = 1; i < f.size(); ++i) {
      EXPECT_GT(f[i].cost, f[i - 1].cost - 1e-12);
      EXPECT_LT(f[i].damage, f[i - 1].damage);
    }
    for (const FrontierPoint& p : f) {  // each point's choice adds up to its totals
      double cost = 0, damage = 0;
      for (size_t g = 0; g < o.size(); ++g) {
        ASSERT_TRUE(o[g][size_t(p.choice[g])]);
        cost += o[g][size_t(p.choice[g])]->cost;
        damage += o[g][size_t(p.choice[g])]->damage;
      }
      EXPECT_NEAR(cost, p.cost, 1e-9);
      EXPECT_NEAR(damage, p.damage, 1e-9);
    }
    std::uniform_real_distribution<double> cap(0.0, 10.0 * double(o.size()));
    for (int q = 0; q < 30; ++q) {
      const double c = cap(rng), d = std::uniform_real_distribution<double>(0.0, double(o.size()))(rng);
      double best_damage = std::numeric_limits<double>::infinity(), best_cost = best_damage;
      for (const Option& r : all) {
        if (r.cost <= c) best_damage = std::min(best_damage, r.damage);
        if (r.damage <= d) best_cost = std::min(best_cost, r.cost);
      }
      const FrontierPoint* a = least_damage_within(f, c);
      ASSERT_EQ(a == nullptr, std::isinf(best_damage));
      if (a) EXPECT_NEAR(a->damage, best_damage, 1e-9);
      const FrontierPoint* b = least_cost_within_damage(f, d);
      ASSERT_EQ(b == nullptr, std::isinf(best_cost));
      if (b) EXPECT_NEAR(b->cost, best_cost, 1e-9);
    }
  }
}

TEST(RecipeFrontier, SpearmanRanks) {
  EXPECT_NEAR(*spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-12);
  EXPECT_NEAR(*spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
  EXPECT_NEAR(*spearman({1, 2, 3, 4, 5}, {1, 3, 2, 4, 5}), 0.9, 1e-12);  // 1 - 6*2/(5*24)
  EXPECT_NEAR(*spearman({1, 1, 2}, {1, 2, 3}), std::sqrt(0.75), 1e-12);   // tied ranks averaged
  EXPECT_FALSE(spearman({1, 2}, {1, 2}));
  EXPECT_FALSE(spearman({1, 1, 1}, {1, 2, 3}));
}

TEST(RecipeFrontier, Fits) {
  EXPECT_NEAR(*slope_through_origin({1, 2, 3}, {2, 4, 6}), 2.0, 1e-12);
  EXPECT_FALSE(slope_through_origin({1, 2}, {-1, -2}));  // a negative scale is no prediction
  EXPECT_FALSE(slope_through_origin({0, 0}, {1, 2}));
  const auto line = least_squares_line({0, 1, 2, 3}, {1, 3, 5, 7});
  ASSERT_TRUE(line);
  EXPECT_NEAR(line->intercept, 1.0, 1e-12);
  EXPECT_NEAR(line->slope, 2.0, 1e-12);
  EXPECT_FALSE(least_squares_line({2, 2, 2}, {1, 2, 3}));
}

}  // namespace
}  // namespace brisk::recipe
