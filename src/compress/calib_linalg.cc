#include "compress/calib_linalg.h"

#include <algorithm>

#include <cmath>

namespace brisk::calib {

namespace {

// Four partial sums: a loop of dependent double adds cannot be vectorized or pipelined without
// reassociating, so the factorizations below spent their time waiting on one add chain.
double dot(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double* row_j = a.data() + j * n;
    const double diag = row_j[j] - dot(row_j, row_j, j);
    if (!(diag > 0)) return false;
    const double ljj = std::sqrt(diag);
    row_j[j] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      double* row_i = a.data() + i * n;
      row_i[j] = (row_i[j] - dot(row_i, row_j, j)) / ljj;
    }
    for (int64_t p = j + 1; p < n; ++p) row_j[p] = 0;
  }
  return true;
}

void symmetric_eigen(std::vector<double>& a, int64_t n, std::vector<double>& values, std::vector<double>& vectors) {
  std::vector<double> v(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) v[size_t(i * n + i)] = 1.0;
  auto at = [&](int64_t i, int64_t j) -> double& { return a[size_t(i * n + j)]; };
  double total = 0;
  for (double x : a) total += x * x;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) off += at(p, q) * at(p, q);
    if (off <= 1e-30 * total) break;  // the off-diagonal at rounding level of the whole
    for (int64_t p = 0; p < n; ++p)
      for (int64_t q = p + 1; q < n; ++q) {
        const double apq = at(p, q);
        if (apq == 0) continue;
        // The rotation that zeroes a[p, q]: t = tan(angle), the smaller root of t^2 + 2 theta t - 1.
        const double theta = (at(q, q) - at(p, p)) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        at(p, p) -= t * apq;
        at(q, q) += t * apq;
        at(p, q) = at(q, p) = 0;
        for (int64_t k = 0; k < n; ++k) {
          if (k != p && k != q) {
            const double g = at(k, p), h = at(k, q);
            at(k, p) = at(p, k) = c * g - s * h;
            at(k, q) = at(q, k) = s * g + c * h;
          }
          double* row = v.data() + k * n;
          const double g = row[p], h = row[q];
          row[p] = c * g - s * h;
          row[q] = s * g + c * h;
        }
      }
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return at(x, x) > at(y, y); });
  values.resize(size_t(n));
  vectors.assign(size_t(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t from = order[size_t(j)];
    values[size_t(j)] = at(from, from);
    for (int64_t i = 0; i < n; ++i) vectors[size_t(i * n + j)] = v[size_t(i * n + from)];
  }
}

std::vector<double> inverse_from_cholesky(const std::vector<double>& l, int64_t n) {
  // inv = L^-1 (lower) by forward substitution, a row at a time: row i of inv is
  // (e_i - sum_{p < i} L[i, p] row p) / L[i, i], rows p holding entries 0..p only. Whole-row
  // updates run over contiguous memory (the column-at-a-time order strode by n per step: 5x
  // slower at n = 1024).
  std::vector<double> inv(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double* row = inv.data() + i * n;
    row[i] = 1.0;
    for (int64_t p = 0; p < i; ++p) {
      const double a = l[size_t(i * n + p)];
      if (a == 0) continue;
      const double* from = inv.data() + p * n;
      for (int64_t c = 0; c <= p; ++c) row[c] -= a * from[c];
    }
    const double d = l[size_t(i * n + i)];
    for (int64_t c = 0; c <= i; ++c) row[c] /= d;
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
