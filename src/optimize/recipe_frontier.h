// brisk optimize's solver (issue 27): one choice per group, each choice with a cost (bytes or
// measured seconds) and a damage score (sensitivity KL, additive over groups). The exact Pareto
// frontier of (total cost, total damage) over all recipes is built by dynamic programming over
// the groups -- after each group the partial recipes are sorted by cost and every one that costs
// more without damaging less is dropped, which loses no optimum because both totals are sums --
// so one scoring pass answers every budget: the least damage under a cost cap, or the least cost
// under a damage cap.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace brisk::recipe {

struct Option {
  double cost = 0, damage = 0;
};

struct FrontierPoint {
  double cost = 0, damage = 0;
  std::vector<int> choice;  // per group: the index of its option
};

// options[g][c]: group g's candidate c, nullopt where the candidate is not available. Every group
// needs at least one option. Points come sorted by cost ascending, damage strictly descending.
std::vector<FrontierPoint> pareto_frontier(const std::vector<std::vector<std::optional<Option>>>& options);

// The least-damage point costing at most `cap`, or null when none does.
const FrontierPoint* least_damage_within(const std::vector<FrontierPoint>& frontier, double cap);
// The least-cost point damaging at most `cap`, or null.
const FrontierPoint* least_cost_within_damage(const std::vector<FrontierPoint>& frontier, double cap);

// Least squares of y ~ slope * x through the origin; nullopt unless the slope is positive.
std::optional<double> slope_through_origin(const std::vector<double>& x, const std::vector<double>& y);

struct Line {
  double intercept = 0, slope = 0;
};
// Least squares of y ~ intercept + slope * x; nullopt when x does not vary.
std::optional<Line> least_squares_line(const std::vector<double>& x, const std::vector<double>& y);

// Spearman's rank correlation of two equally long series (average ranks for ties); nullopt with
// fewer than 3 points or a constant series.
std::optional<double> spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace brisk::recipe
