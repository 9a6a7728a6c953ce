#include "compress/calib_linalg.h"

#include <algorithm>

#include <cmath>

#include "core/thread_pool.h"

namespace brisk::calib {

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

namespace {

// Householder reduction of the symmetric a [n, n] (overwritten) to tridiagonal form T = Q^T a Q:
// diagonal d [n], off-diagonal e [n - 1] (e[i] = T[i + 1, i]); q [n, n] row-major. Rows of each
// update run on the pool.
void tridiagonalize(std::vector<double>& a, int64_t n, std::vector<double>& d, std::vector<double>& e,
                    std::vector<double>& q, ThreadPool* pool) {
  std::vector<std::vector<double>> reflectors;  // v_k over indices k+1..n-1, scaled so H_k = I - v v^T
  std::vector<double> p(static_cast<size_t>(n)), w(static_cast<size_t>(n));
  for (int64_t k = 0; k + 2 < n; ++k) {
    const int64_t m = n - k - 1;  // the trailing block's size
    double* col = a.data() + k * n + k + 1;  // row k right of the diagonal = column k below it
    const double norm = std::sqrt(dot(col, col, m));
    std::vector<double>& v = reflectors.emplace_back(col, col + m);
    if (norm == 0) {  // already reduced: H_k = I
      std::fill(v.begin(), v.end(), 0.0);
      continue;
    }
    const double alpha = col[0] > 0 ? -norm : norm;  // x - alpha e1 without cancellation
    v[0] -= alpha;
    const double scale = std::sqrt(2 / dot(v.data(), v.data(), m));
    for (double& x : v) x *= scale;  // now H = I - v v^T
    // The trailing block B <- H B H = B - v w^T - w v^T, p = B v, w = p - (v.p / 2) v.
    double* b = a.data() + (k + 1) * n + k + 1;
    parallel_for(pool, m, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) p[size_t(i)] = dot(b + i * n, v.data(), m);
    });
    const double half = dot(v.data(), p.data(), m) / 2;
    for (int64_t i = 0; i < m; ++i) w[size_t(i)] = p[size_t(i)] - half * v[size_t(i)];
    parallel_for(pool, m, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        double* row = b + i * n;
        const double vi = v[size_t(i)], wi = w[size_t(i)];
        for (int64_t j = 0; j < m; ++j) row[j] -= vi * w[size_t(j)] + wi * v[size_t(j)];
      }
    });
    col[0] = alpha;
  }
  d.resize(size_t(n));
  e.assign(size_t(std::max<int64_t>(n - 1, 0)), 0.0);
  for (int64_t i = 0; i < n; ++i) d[size_t(i)] = a[size_t(i * n + i)];
  for (int64_t i = 0; i + 1 < n; ++i) e[size_t(i)] = a[size_t(i * n + i + 1)];
  // Q = H_0 H_1 ... H_{n-3}, formed from the last: H_k touches rows and columns k+1.. only.
  // Q_sub <- Q_sub - v (v^T Q_sub), by blocks of columns.
  q.assign(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) q[size_t(i * n + i)] = 1.0;
  for (int64_t k = int64_t(reflectors.size()) - 1; k >= 0; --k) {
    const std::vector<double>& v = reflectors[size_t(k)];
    const int64_t m = n - k - 1;
    double* sub = q.data() + (k + 1) * n + k + 1;
    parallel_for(pool, m, [&](int64_t begin, int64_t end) {
      std::vector<double> u(size_t(end - begin), 0.0);
      for (int64_t i = 0; i < m; ++i) {
        const double vi = v[size_t(i)];
        const double* row = sub + i * n;
        for (int64_t j = begin; j < end; ++j) u[size_t(j - begin)] += vi * row[j];
      }
      for (int64_t i = 0; i < m; ++i) {
        const double vi = v[size_t(i)];
        double* row = sub + i * n;
        for (int64_t j = begin; j < end; ++j) row[j] -= vi * u[size_t(j - begin)];
      }
    });
  }
}

// The eigenvalues of the symmetric tridiagonal (d, e), left in d, by implicit QR steps with
// Wilkinson shifts; each step's rotations of coordinates (k, k+1) are then applied to rows k and
// k+1 of z [n, n], by blocks of columns on the pool.
void tridiagonal_eigen(std::vector<double>& d, std::vector<double>& e, int64_t n, std::vector<double>& z,
                       ThreadPool* pool) {
  constexpr double kEps = 2.220446049250313e-16;
  auto negligible = [&](int64_t i) { return std::fabs(e[size_t(i)]) <= kEps * (std::fabs(d[size_t(i)]) + std::fabs(d[size_t(i + 1)])); };
  struct Rotation {
    int64_t k;
    double c, s;
  };
  std::vector<Rotation> step;
  int64_t hi = n - 1;
  int steps = 0;  // on this eigenvalue: ~2-3 when converging; the cap only guards a pathology
  while (hi > 0) {
    if (negligible(hi - 1) || steps >= 64) {
      e[size_t(hi - 1)] = 0;
      --hi;
      steps = 0;
      continue;
    }
    int64_t lo = hi - 1;  // the unreduced block [lo, hi]
    while (lo > 0 && !negligible(lo - 1)) --lo;
    if (lo > 0) e[size_t(lo - 1)] = 0;
    ++steps;
    // Wilkinson's shift: the eigenvalue of the trailing 2x2 nearer its last diagonal entry.
    const double delta = (d[size_t(hi - 1)] - d[size_t(hi)]) / 2, b2 = e[size_t(hi - 1)] * e[size_t(hi - 1)];
    const double shift = d[size_t(hi)] - b2 / (delta + (delta >= 0 ? 1 : -1) * std::sqrt(delta * delta + b2));
    double x = d[size_t(lo)] - shift, bulge = e[size_t(lo)];
    step.clear();
    for (int64_t k = lo; k < hi; ++k) {
      // The rotation (c, s) that sends (x, bulge) to (r, 0); applied as T <- R^T T R on (k, k+1).
      const double r = std::hypot(x, bulge);
      const double c = r == 0 ? 1 : x / r, s = r == 0 ? 0 : bulge / r;
      if (k > lo) e[size_t(k - 1)] = r;
      const double a = d[size_t(k)], b = e[size_t(k)], cc = d[size_t(k + 1)];
      d[size_t(k)] = c * c * a + 2 * c * s * b + s * s * cc;
      d[size_t(k + 1)] = s * s * a - 2 * c * s * b + c * c * cc;
      e[size_t(k)] = c * s * (cc - a) + (c * c - s * s) * b;
      if (k + 1 < hi) {  // the bulge moves to (k + 2, k)
        bulge = s * e[size_t(k + 1)];
        e[size_t(k + 1)] *= c;
      }
      x = e[size_t(k)];
      step.push_back({k, c, s});
    }
    parallel_for(pool, n, [&](int64_t begin, int64_t end) {
      for (const Rotation& rot : step) {
        double* x_row = z.data() + rot.k * n;
        double* y_row = x_row + n;
        for (int64_t j = begin; j < end; ++j) {
          const double a = x_row[j], b = y_row[j];
          x_row[j] = rot.c * a + rot.s * b;
          y_row[j] = rot.c * b - rot.s * a;
        }
      }
    });
  }
}

}  // namespace

void symmetric_eigen(std::vector<double>& a, int64_t n, std::vector<double>& values, std::vector<double>& vectors,
                     ThreadPool* pool) {
  std::vector<double> d, e, q;
  tridiagonalize(a, n, d, e, q, pool);
  // z's rows become the eigenvectors: z = (Q S)^T, S the QR steps' rotations.
  std::vector<double> z(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) z[size_t(j * n + i)] = q[size_t(i * n + j)];
  tridiagonal_eigen(d, e, n, z, pool);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return d[size_t(x)] > d[size_t(y)]; });
  values.resize(size_t(n));
  vectors.assign(size_t(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t from = order[size_t(j)];
    values[size_t(j)] = d[size_t(from)];
    for (int64_t i = 0; i < n; ++i) vectors[size_t(i * n + j)] = z[size_t(from * n + i)];
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
