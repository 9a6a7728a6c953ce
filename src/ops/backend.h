// The ops a model forward pass calls, behind one interface per device. Activations are fp32
// buffers of the backend's device; weights are Tensors in their stored dtype. Models call these
// directly; a backend decides threads, SIMD and kernels.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace brisk {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]); see ref::matmul.
  virtual void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                      float* y) = 0;

  // Causal attention of `rows` queries at positions first_pos.. over the cache; see ref::attention.
  virtual void attention(const float* q, const float* k_cache, const float* v_cache, float* out,
                         int64_t rows, int64_t first_pos, int64_t n_heads, int64_t n_kv_heads,
                         int64_t head_dim, float scale) = 0;

  virtual void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                        float* y) = 0;
  virtual void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows,
                          int64_t d, float eps, float* y) = 0;
  // In place on x [rows, n_heads, head_dim]; cos/sin tables are [n_positions, head_dim/2].
  virtual void rope(float* x, const int32_t* positions, int64_t rows, int64_t n_heads,
                    int64_t head_dim, const float* cos_table, const float* sin_table) = 0;
  virtual void silu_mul(const float* gate, const float* up, float* out, int64_t n) = 0;
  virtual void gelu_tanh(float* x, int64_t n) = 0;
  virtual void add(float* x, const float* y, int64_t n) = 0;  // x += y
};

}  // namespace brisk
