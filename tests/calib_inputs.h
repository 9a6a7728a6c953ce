// Random weights and calibration statistics shared by the compression tests (pruning, low rank).
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "compress/calibration.h"

namespace brisk::calib {

inline std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(size_t(rows * cols));
  for (float& v : w) v = dist(rng);
  return w;
}

// The statistics (X^T X, sum |x|) of `n` rows of correlated inputs (a shared factor plus noise,
// channel scales 0.1..10): what makes the activation-aware methods choose differently from the
// weight-only ones.
inline InputStats correlated_inputs(int64_t cols, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> scale(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) scale[size_t(j)] = std::pow(10.0, 2.0 * double(j % 7) / 6.0 - 1.0);
  InputStats s;
  s.width = cols;
  s.rows = n;
  s.xtx.assign(size_t(cols * cols), 0.0);
  s.abs_sum.assign(size_t(cols), 0.0);
  s.sq_sum.assign(size_t(cols), 0.0);
  std::vector<double> x(static_cast<size_t>(cols));
  for (int64_t r = 0; r < n; ++r) {
    const double shared = dist(rng);
    for (int64_t j = 0; j < cols; ++j) x[size_t(j)] = scale[size_t(j)] * (0.7 * shared + dist(rng));
    for (int64_t i = 0; i < cols; ++i) {
      s.abs_sum[size_t(i)] += std::fabs(x[size_t(i)]);
      s.sq_sum[size_t(i)] += x[size_t(i)] * x[size_t(i)];
      for (int64_t j = 0; j < cols; ++j) s.xtx[size_t(i * cols + j)] += x[size_t(i)] * x[size_t(j)];
    }
  }
  return s;
}

}  // namespace brisk::calib
