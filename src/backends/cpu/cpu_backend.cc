#include "backends/cpu/cpu_backend.h"

#include "backends/cpu/attention.h"
#include "backends/cpu/matmul.h"
#include "ops/reference.h"

namespace brisk {

void CpuBackend::matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                        float* y) {
  cpu::matmul(x, m, k, w, bias, y, pool_);
}

void CpuBackend::attention(const float* q, const float* k_cache, const float* v_cache, float* out,
                           int64_t rows, int64_t first_pos, int64_t n_heads, int64_t n_kv_heads,
                           int64_t head_dim, float scale) {
  cpu::attention(q, k_cache, v_cache, out, rows, first_pos, n_heads, n_kv_heads, head_dim, scale,
                 pool_);
}

void CpuBackend::rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                          float* y) {
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    ref::rms_norm(x + b * d, weight, e - b, d, eps, y + b * d);
  });
}

void CpuBackend::layer_norm(const float* x, const float* weight, const float* bias, int64_t rows,
                            int64_t d, float eps, float* y) {
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    ref::layer_norm(x + b * d, weight, bias, e - b, d, eps, y + b * d);
  });
}

void CpuBackend::rope(float* x, const int32_t* positions, int64_t rows, int64_t n_heads,
                      int64_t head_dim, const float* cos_table, const float* sin_table) {
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    ref::rope(x + b * n_heads * head_dim, positions + b, e - b, n_heads, head_dim, cos_table, sin_table);
  });
}

void CpuBackend::silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { ref::silu_mul(gate + b, up + b, out + b, e - b); });
}

void CpuBackend::gelu_tanh(float* x, int64_t n) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { ref::gelu_tanh(x + b, e - b); });
}

void CpuBackend::add(float* x, const float* y, int64_t n) { ref::add(x, y, n); }

}  // namespace brisk
