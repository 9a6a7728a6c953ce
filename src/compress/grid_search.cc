#include "compress/grid_search.h"

#include <limits>

namespace brisk::calib {

std::vector<Shrink> search_shrinks(int64_t groups, const QuantSpec& spec, const GridSearchOptions& options,
                                   const ShrinkErrors& errors) {
  const int steps = std::max(options.steps, 1);
  auto level = [&](int t) { return 1.0f - options.max_shrink * float(t) / float(steps); };
  std::vector<Shrink> best(static_cast<size_t>(groups)), trial(static_cast<size_t>(groups));
  std::vector<double> best_error(size_t(groups), std::numeric_limits<double>::infinity()), error;
  // One round: every group tries `vary` applied to its best shrink so far.
  auto round = [&](const std::function<Shrink(Shrink, float)>& vary) {
    const std::vector<Shrink> start = best;
    for (int t = 0; t < steps; ++t) {
      for (size_t i = 0; i < trial.size(); ++i) trial[i] = vary(start[i], level(t));
      error.assign(size_t(groups), 0.0);
      errors(trial, error);
      for (size_t i = 0; i < trial.size(); ++i)
        if (error[i] < best_error[i]) {
          best_error[i] = error[i];
          best[i] = trial[i];
        }
    }
  };
  round([](Shrink, float s) { return Shrink{s, s}; });  // t = 0: no shrink
  if (spec.symmetry == Symmetry::Asymmetric) {
    round([](Shrink b, float s) { return Shrink{s, b.hi}; });
    round([](Shrink b, float s) { return Shrink{b.lo, s}; });
  }
  return best;
}

double weighted_grid_error(const float* w, int64_t n, const float* importance, const QuantTraits& traits,
                           const GroupParams& p) {
  double e = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(w[i]) - double(round_trip(traits, w[i], p));
    e += (importance ? double(importance[i]) : 1.0) * d * d;
  }
  return e;
}

std::vector<GroupParams> search_grids(const float* w, int64_t rows, int64_t n, int64_t row_stride,
                                      const float* importance, const QuantSpec& spec,
                                      const GridSearchOptions& options) {
  const RowGroupRanges ranges(w, rows, n, row_stride, spec);
  const QuantTraits& traits = scheme_traits(spec.scheme);
  const std::vector<Shrink> best =
      search_shrinks(rows, spec, options, [&](const std::vector<Shrink>& shrinks, std::vector<double>& error) {
        for (int64_t r = 0; r < rows; ++r)
          error[size_t(r)] =
              weighted_grid_error(w + r * row_stride, n, importance, traits, ranges.grid(r, shrinks[size_t(r)]));
      });
  std::vector<GroupParams> grids(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) grids[size_t(r)] = ranges.grid(r, best[size_t(r)]);
  return grids;
}

}  // namespace brisk::calib
