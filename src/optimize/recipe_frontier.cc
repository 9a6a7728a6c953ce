#include "optimize/recipe_frontier.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace brisk::recipe {

std::vector<FrontierPoint> pareto_frontier(const std::vector<std::vector<std::optional<Option>>>& options) {
  std::vector<FrontierPoint> frontier = {FrontierPoint{}};
  for (const auto& group : options) {
    std::vector<FrontierPoint> next;
    next.reserve(frontier.size() * group.size());
    for (const FrontierPoint& p : frontier)
      for (size_t c = 0; c < group.size(); ++c) {
        if (!group[c]) continue;
        FrontierPoint q{p.cost + group[c]->cost, p.damage + group[c]->damage, p.choice};
        q.choice.push_back(int(c));
        next.push_back(std::move(q));
      }
    std::sort(next.begin(), next.end(), [](const FrontierPoint& a, const FrontierPoint& b) {
      return a.cost != b.cost ? a.cost < b.cost : a.damage < b.damage;
    });
    frontier.clear();
    for (FrontierPoint& p : next)
      if (frontier.empty() || p.damage < frontier.back().damage) frontier.push_back(std::move(p));
  }
  return frontier;
}

const FrontierPoint* least_damage_within(const std::vector<FrontierPoint>& frontier, double cap) {
  const FrontierPoint* best = nullptr;
  for (const FrontierPoint& p : frontier)  // cost ascending, damage descending: the last that fits
    if (p.cost <= cap) best = &p;
  return best;
}

const FrontierPoint* least_cost_within_damage(const std::vector<FrontierPoint>& frontier, double cap) {
  for (const FrontierPoint& p : frontier)  // the first that fits is the cheapest
    if (p.damage <= cap) return &p;
  return nullptr;
}

std::optional<double> slope_through_origin(const std::vector<double>& x, const std::vector<double>& y) {
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    sxy += x[i] * y[i];
    sxx += x[i] * x[i];
  }
  if (!(sxx > 0 && sxy > 0)) return std::nullopt;
  return sxy / sxx;
}

std::optional<Line> least_squares_line(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return std::nullopt;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) mx += x[i] / double(n), my += y[i] / double(n);
  double cxy = 0, cxx = 0;
  for (size_t i = 0; i < n; ++i) {
    cxy += (x[i] - mx) * (y[i] - my);
    cxx += (x[i] - mx) * (x[i] - mx);
  }
  if (!(cxx > 0)) return std::nullopt;
  return Line{my - cxy / cxx * mx, cxy / cxx};
}

namespace {

std::vector<double> ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * double(i + j);  // ties share their mean rank
    i = j + 1;
  }
  return r;
}

}  // namespace

std::optional<double> spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 3) return std::nullopt;
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = double(a.size()), mean = (n - 1) / 2;
  double cov = 0, va = 0, vb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    cov += (ra[i] - mean) * (rb[i] - mean);
    va += (ra[i] - mean) * (ra[i] - mean);
    vb += (rb[i] - mean) * (rb[i] - mean);
  }
  if (va == 0 || vb == 0) return std::nullopt;
  return cov / std::sqrt(va * vb);
}

}  // namespace brisk::recipe
