// Searching a group's grid range instead of taking RTN's full min/max (or absmax): shrinking the
// range clips the few extreme weights of a group but gives every other weight a finer step, which
// lowers the group's error when it is judged by what the layer computes. AWQ searches the shrink
// with the output error on calibration activations ("auto_clip"), GPTQ with a per-column weighted
// quantization error when it fixes a group's grid (the original GPTQ code's `mse` option, there
// unweighted).
//
// The search is coordinate-wise over many groups at once (one per output row): first the same
// shrink for both ends, then, for asymmetric grids, each end alone starting from the best joint
// shrink. No shrink is always a candidate, so the result never has a larger error than the full
// range on the objective given.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "compress/calib_grid.h"

namespace brisk::calib {

struct GridSearchOptions {
  int steps = 20;            // shrink levels 1, 1 - max_shrink/steps, ..., per coordinate
  float max_shrink = 0.5f;   // the smallest range tried is (1 - max_shrink) of the full one
};

// The extremes of one group per row (row r's n values at w + r * row_stride), found once, and the
// params each gives under a shrink.
class RowGroupRanges {
 public:
  RowGroupRanges(const float* w, int64_t rows, int64_t n, int64_t row_stride, const QuantSpec& spec)
      : traits_(scheme_traits(spec.scheme)), symmetry_(spec.symmetry), range_(static_cast<size_t>(rows)) {
    for (int64_t r = 0; r < rows; ++r) range_[size_t(r)] = value_range(w + r * row_stride, n, 1);
  }
  GroupParams grid(int64_t r, Shrink shrink) const {
    return fit_grid(traits_, symmetry_, range_[size_t(r)].first, range_[size_t(r)].second, shrink);
  }

 private:
  const QuantTraits& traits_;
  Symmetry symmetry_;
  std::vector<std::pair<float, float>> range_;
};

// errors(shrinks, out): out[i] = the error of group i with its range shrunk by shrinks[i].
using ShrinkErrors = std::function<void(const std::vector<Shrink>&, std::vector<double>&)>;

// The shrink with the lowest error for each of `groups` groups.
std::vector<Shrink> search_shrinks(int64_t groups, const QuantSpec& spec, const GridSearchOptions& options,
                                   const ShrinkErrors& errors);

// sum_i importance[i] (w[i] - q(w[i]))^2 for n values of one group with params p (importance null: 1).
double weighted_grid_error(const float* w, int64_t n, const float* importance, const QuantTraits& traits,
                           const GroupParams& p);

// Grids for `rows` groups of n values (row r at w + r * row_stride) minimising
// weighted_grid_error with per-column importance [n] (shared by the rows; null: plain MSE).
std::vector<GroupParams> search_grids(const float* w, int64_t rows, int64_t n, int64_t row_stride,
                                      const float* importance, const QuantSpec& spec,
                                      const GridSearchOptions& options);

}  // namespace brisk::calib
