#include "backends/cpu/layer_ops.h"

#include <cmath>
#include <cstring>

#include "backends/cpu/vector_math.h"
#include "ops/reference.h"

namespace brisk::cpu {

namespace {

// silu(g) = g / (1 + e^-g), from e = e^-|g| so the exponent never overflows:
// g / (1 + e) for g >= 0, g e / (1 + e) below.
__attribute__((always_inline)) inline void silu(v16& g) {
  v16 e = g > 0 ? -g : g;
  exp_nonpositive(e);
  const v16 one = v16{} + 1.0f;
  g = g * (g > 0 ? one : e) / (one + e);
}

}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) void add(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    v16 a, b;
    std::memcpy(&a, x + i, sizeof(v16));
    std::memcpy(&b, y + i, sizeof(v16));
    a += b;
    std::memcpy(x + i, &a, sizeof(v16));
  }
  for (; i < n; ++i) x[i] += y[i];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void rms_norm(const float* x,
                                                                           const float* weight, int64_t rows,
                                                                           int64_t d, float eps, float* y) {
  typedef double v8d __attribute__((vector_size(64)));
  typedef float v8f __attribute__((vector_size(32)));
  const int64_t full = d / 8 * 8;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    float* yr = y + r * d;
    v8d sums[2] = {};  // two chains, so the adds overlap
    int64_t i = 0;
    for (; i < full; i += 8) {
      v8f f;
      std::memcpy(&f, xr + i, sizeof(f));
      const v8d v = __builtin_convertvector(f, v8d);
      sums[(i / 8) & 1] += v * v;
    }
    double ss = 0;
    for (int l = 0; l < 8; ++l) ss += sums[0][l] + sums[1][l];
    for (; i < d; ++i) ss += double(xr[i]) * xr[i];
    const float inv = float(1.0 / std::sqrt(ss / double(d) + eps));
    int64_t j = 0;
    for (; j + kLanes <= d; j += kLanes) {  // explicit vectors: y may alias x
      v16 v, w;
      std::memcpy(&v, xr + j, sizeof(v16));
      std::memcpy(&w, weight + j, sizeof(v16));
      v = w * (v * inv);
      std::memcpy(yr + j, &v, sizeof(v16));
    }
    for (; j < d; ++j) yr[j] = weight[j] * (xr[j] * inv);
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void rope(float* x, int64_t rows,
                                                                       int64_t n_heads, int64_t head_dim,
                                                                       const int32_t* positions,
                                                                       const float* cos_table,
                                                                       const float* sin_table) {
  const int64_t half = head_dim / 2;
  if (half % kLanes != 0) return ref::rope(x, rows, n_heads, head_dim, positions, cos_table, sin_table);
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos_table + int64_t(positions[r]) * half;
    const float* s = sin_table + int64_t(positions[r]) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (r * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; i += kLanes) {
        v16 a, b, cv, sv;
        std::memcpy(&a, v + i, sizeof(v16));
        std::memcpy(&b, v + i + half, sizeof(v16));
        std::memcpy(&cv, c + i, sizeof(v16));
        std::memcpy(&sv, s + i, sizeof(v16));
        const v16 lo = a * cv - b * sv, hi = b * cv + a * sv;
        std::memcpy(v + i, &lo, sizeof(v16));
        std::memcpy(v + i + half, &hi, sizeof(v16));
      }
    }
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void silu_mul(const float* gate, const float* up,
                                                                           float* out, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    v16 g, u;
    std::memcpy(&g, gate + i, sizeof(v16));
    std::memcpy(&u, up + i, sizeof(v16));
    silu(g);
    g *= u;
    std::memcpy(out + i, &g, sizeof(v16));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void mul(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    v16 a, b;
    std::memcpy(&a, x + i, sizeof(v16));
    std::memcpy(&b, y + i, sizeof(v16));
    a *= b;
    std::memcpy(x + i, &a, sizeof(v16));
  }
  for (; i < n; ++i) x[i] *= y[i];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void scale(float* x, int64_t n, float s) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    v16 a;
    std::memcpy(&a, x + i, sizeof(v16));
    a *= s;
    std::memcpy(x + i, &a, sizeof(v16));
  }
  for (; i < n; ++i) x[i] *= s;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void soft_cap(float* x, int64_t n, float cap) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    v16 a;
    std::memcpy(&a, x + i, sizeof(v16));
    soft_cap(a, cap);
    std::memcpy(x + i, &a, sizeof(v16));
  }
  for (; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void gelu_erf(float* x, int64_t n) { ref::gelu_erf(x, n); }

__attribute__((target_clones("avx512f", "avx2", "default"))) void gelu_tanh(float* x, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    v16 v;
    std::memcpy(&v, x + i, sizeof(v16));
    v16 t = k * (v + 0.044715f * v * v * v);
    tanh_of(t);
    v = 0.5f * v * (1.0f + t);
    std::memcpy(x + i, &v, sizeof(v16));
  }
  for (; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::tanh(k * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
}

}  // namespace brisk::cpu
