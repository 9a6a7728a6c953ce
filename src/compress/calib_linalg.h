// The dense linear algebra the calibrated methods share: Cholesky factors in double (GPTQ), and
// fp32 products and output errors on host memory through a CPU backend's SIMD matmul (AWQ's and
// SmoothQuant's searches evaluate many candidate matrices).
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "ops/backend.h"

namespace brisk::calib {

// sum a[i] b[i] in double, with four partial sums: a loop of dependent double adds cannot be
// vectorized or pipelined without reassociating, so the factorizations spent their time waiting
// on one add chain.
double dot(const double* a, const double* b, int64_t n);

// a [n, n] symmetric -> its lower Cholesky factor L (a = L L^T) in place, upper part zeroed.
// False if a is not positive definite.
bool cholesky_lower(std::vector<double>& a, int64_t n);

// The inverse of a = L L^T from its lower factor L: L^-T L^-1.
std::vector<double> inverse_from_cholesky(const std::vector<double>& l, int64_t n);

// The eigenvalues of a symmetric a [n, n] in decreasing order, and their unit eigenvectors as the
// columns of vectors [n, n] (vectors[i * n + j]: component i of vector j): Householder reduction
// to tridiagonal form, then implicit QR steps with Wilkinson shifts (Golub & Van Loan, Matrix
// Computations, 8.3). a is overwritten. About 9 n^3 flops in all (cyclic Jacobi, which this
// replaced, took ~6-10 sweeps of ~4 n^3 with strided access: over 17 s at n = 896).
// The updates of each step run on `pool` when given (rows or column blocks).
void symmetric_eigen(std::vector<double>& a, int64_t n, std::vector<double>& values, std::vector<double>& vectors,
                     ThreadPool* pool = nullptr);

// y[m, n] = x[m, k] · w[n, k]^T for fp32 host arrays, on a backend that computes in host memory.
void matmul_host(Backend& backend, const float* x, int64_t m, int64_t k, const float* w, int64_t n,
                 float* y);

// sum_r dw_r H dw_r^T with dw = w - q ([rows, cols] each) and h = sum x^T x [cols, cols] in fp32:
// the squared output error ||X w^T - X q^T||^2 over the calibration rows.
double output_error(Backend& backend, const float* w, const float* q, int64_t rows, int64_t cols,
                    const std::vector<float>& h);

std::vector<float> to_float(const std::vector<double>& v);

}  // namespace brisk::calib
