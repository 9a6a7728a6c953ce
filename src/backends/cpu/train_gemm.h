// The matrix products of a linear layer's backward pass on the CPU (issue 21, training), fp32.
// For the forward y[m, n] = x[m, k] w[n, k]^T (cpu::matmul), with x, w, y and their gradients
// row-major and contiguous:
//   linear_input_grad:  dx[m, k]  = dy[m, n] w[n, k]      (written)
//   linear_weight_grad: dw[n, k] += dy[m, n]^T x[m, k]    (added: micro-batches accumulate into one
//                                                          step's gradient, as ref::linear_backward)
// Threads split the rows of the output (dx by rows of m, dw by rows of n), so no two threads write
// the same memory.
//
// Deterministic: every output element is one fp32 FMA chain over the summed index in ascending
// order (dx[i, j]: from 0 over o < n of dy[i, o] * w[o, j]; dw[o, j]: from its current value over
// i < m of dy[i, o] * x[i, j]). The result is therefore the same bits for any thread count, cache
// blocking, tile shape or ISA.
#pragma once

#include <cstdint>

#include "backends/cpu/matmul.h"
#include "core/thread_pool.h"

namespace brisk::cpu {

void linear_input_grad(const float* dy, int64_t m, int64_t n, const float* w, int64_t k, float* dx,
                       ThreadPool& pool, MatmulIsa isa = MatmulIsa::Auto);

void linear_weight_grad(const float* dy, int64_t m, int64_t n, const float* x, int64_t k, float* dw,
                        ThreadPool& pool, MatmulIsa isa = MatmulIsa::Auto);

}  // namespace brisk::cpu
