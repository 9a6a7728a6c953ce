// The Optimal Brain Surgeon column sweep that GPTQ (gptq.h) and SparseGPT (prune.h) share: a matrix
// W [rows, cols] is replaced one input column at a time (quantized, or zeroed where pruned), and each
// column's error e = (w - replaced) / U_jj is spread over the columns not yet visited through the
// row U_j of the upper Cholesky factor of H^-1, H = 2 X^T X of the layer's calibration inputs --
// the update that minimises the layer's output error given the columns already fixed (Frantar &
// Alistarh). In-block updates are immediate, the rest applied once per block (lazy batching).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace brisk::calib {

// U: the upper Cholesky factor of (H + damp * mean(diag H) * I)^-1, [n, n] fp32. Dampening grows
// tenfold until H is positive definite (calibration that never excited some directions leaves it
// singular).
Result<std::vector<float>> inverse_hessian_factor(const std::vector<double>& h, int64_t n, double damp);

// Visits columns 0..cols-1 of `work` [rows, cols] (updated in place) in blocks of `block`: before
// each column j, before_column(j) (a method fixes its grid or mask from the current, already-updated
// weights); then for each row r, replace(r, j, w) returns what w = work[r, j] becomes, and the error
// spreads. `work` ends as the replaced matrix. Each row's arithmetic reads only that row and U, so
// a method whose choices are per row may sweep blocks of rows apart (GPTQ does, in parallel).
template <class BeforeColumn, class Replace>
void obs_sweep(float* work, int64_t rows, int64_t cols, const std::vector<float>& u, int64_t block,
               BeforeColumn&& before_column, Replace&& replace) {
  block = std::max<int64_t>(block, 1);
  std::vector<float> err(size_t(rows * block));
  for (int64_t b0 = 0; b0 < cols; b0 += block) {
    const int64_t b1 = std::min(b0 + block, cols);
    for (int64_t j = b0; j < b1; ++j) {
      before_column(j);
      const float* u_row = u.data() + j * cols;
      const float d = u_row[j];
      for (int64_t r = 0; r < rows; ++r) {
        float* wr = work + r * cols;
        const float value = replace(r, j, wr[j]);
        const float e = (wr[j] - value) / d;
        wr[j] = value;
        err[size_t(r * block + (j - b0))] = e;
        for (int64_t k = j + 1; k < b1; ++k) wr[k] -= e * u_row[k];
      }
    }
    // Lazy batch: the block's errors reach the remaining columns in one pass.
    for (int64_t r = 0; r < rows; ++r) {
      float* wr = work + r * cols;
      for (int64_t j = b0; j < b1; ++j) {
        const float e = err[size_t(r * block + (j - b0))];
        const float* u_row = u.data() + j * cols;
        for (int64_t k = b1; k < cols; ++k) wr[k] -= e * u_row[k];
      }
    }
  }
}

}  // namespace brisk::calib
