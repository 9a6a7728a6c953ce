#include "compress/calib_linalg.h"

#include <cmath>

namespace brisk::calib {

bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double* row_j = a.data() + j * n;
    double diag = row_j[j];
    for (int64_t p = 0; p < j; ++p) diag -= row_j[p] * row_j[p];
    if (!(diag > 0)) return false;
    const double ljj = std::sqrt(diag);
    row_j[j] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      double* row_i = a.data() + i * n;
      double s = row_i[j];
      for (int64_t p = 0; p < j; ++p) s -= row_i[p] * row_j[p];
      row_i[j] = s / ljj;
    }
    for (int64_t p = j + 1; p < n; ++p) row_j[p] = 0;
  }
  return true;
}

std::vector<double> inverse_from_cholesky(const std::vector<double>& l, int64_t n) {
  // inv = L^-1 (lower) by forward substitution, column by column of the identity.
  std::vector<double> inv(size_t(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c) {
    inv[size_t(c * n + c)] = 1.0 / l[size_t(c * n + c)];
    for (int64_t i = c + 1; i < n; ++i) {
      double s = 0;
      for (int64_t p = c; p < i; ++p) s -= l[size_t(i * n + p)] * inv[size_t(p * n + c)];
      inv[size_t(i * n + c)] = s / l[size_t(i * n + i)];
    }
  }
  // (L^-1)^T L^-1: entry (i, j) = sum_{p >= max(i, j)} inv[p, i] inv[p, j].
  std::vector<double> out(size_t(n * n), 0.0);
  for (int64_t p = 0; p < n; ++p) {
    const double* row = inv.data() + p * n;
    for (int64_t i = 0; i <= p; ++i) {
      const double a = row[i];
      if (a == 0) continue;
      double* o = out.data() + i * n;
      for (int64_t j = 0; j <= i; ++j) o[j] += a * row[j];
    }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) out[size_t(j * n + i)] = out[size_t(i * n + j)];
  return out;
}

void matmul_host(Backend& backend, const float* x, int64_t m, int64_t k, const float* w, int64_t n,
                 float* y) {
  const Tensor weight{const_cast<float*>(w), DType::F32, {n, k}};
  backend.matmul(x, m, k, weight, nullptr, y);
}

double output_error(Backend& backend, const float* w, const float* q, int64_t rows, int64_t cols,
                    const std::vector<float>& h) {
  std::vector<float> dw(size_t(rows * cols)), dwh(size_t(rows * cols));
  for (size_t i = 0; i < dw.size(); ++i) dw[i] = w[i] - q[i];
  matmul_host(backend, dw.data(), rows, cols, h.data(), cols, dwh.data());  // H is symmetric
  double e = 0;
  for (size_t i = 0; i < dw.size(); ++i) e += double(dw[i]) * double(dwh[i]);
  return e;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace brisk::calib
