#include "compress/obs_sweep.h"

#include "compress/calib_linalg.h"

namespace brisk::calib {

Result<std::vector<float>> inverse_hessian_factor(const std::vector<double>& h, int64_t n, double damp) {
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) mean_diag += h[size_t(i * n + i)];
  mean_diag /= double(n);
  double added = damp * mean_diag;
  for (int attempt = 0; attempt < 6; ++attempt, added *= 10) {
    std::vector<double> l = h;
    for (int64_t i = 0; i < n; ++i) l[size_t(i * n + i)] += added;
    if (!cholesky_lower(l, n)) continue;
    std::vector<double> inv = inverse_from_cholesky(l, n);
    if (!cholesky_lower(inv, n)) continue;
    std::vector<float> upper(size_t(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) upper[size_t(i * n + j)] = float(inv[size_t(j * n + i)]);
    return upper;
  }
  return make_error("the Hessian stays indefinite after dampening (non-finite calibration activations?)");
}

}  // namespace brisk::calib
