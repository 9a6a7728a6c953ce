#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace brisk::cpu {

namespace {

// Built for AVX-512, AVX2 and baseline; the loader picks the best at run time. Sixteen partial
// sums let the compiler vectorize the reduction without reassociating (no -ffast-math).
__attribute__((target_clones("avx512f", "avx2", "default")))
float dot(const float* a, const float* b, int64_t n) {
  float partial[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) partial[j] += a[i + j] * b[i + j];
  float sum = 0;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (float p : partial) sum += p;
  return sum;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void attend_one(const float* qh, const float* k_cache, const float* v_cache, float* oh,
                int64_t n_keys, int64_t kv_head, int64_t n_kv_heads, int64_t head_dim, float scale,
                std::vector<float>& scores) {
  scores.resize(size_t(n_keys));
  const int64_t stride = n_kv_heads * head_dim;
  float max_score = -INFINITY;
  for (int64_t j = 0; j < n_keys; ++j) {
    float s = dot(qh, k_cache + j * stride + kv_head * head_dim, head_dim) * scale;
    scores[size_t(j)] = s;
    max_score = std::max(max_score, s);
  }
  float sum = 0;
  for (int64_t j = 0; j < n_keys; ++j) sum += (scores[size_t(j)] = std::exp(scores[size_t(j)] - max_score));
  std::fill(oh, oh + head_dim, 0.0f);
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n_keys; ++j)
    axpy(scores[size_t(j)] * inv, v_cache + j * stride + kv_head * head_dim, oh, head_dim);
}

}  // namespace

void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t rows,
               int64_t first_pos, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
               ThreadPool& pool) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t units = rows * n_heads;
  const int n_threads = pool.size();
  pool.run_on_all([&](int t) {
    thread_local std::vector<float> scores;  // grows once, reused by every later call
    for (int64_t u = t; u < units; u += n_threads) {
      const int64_t r = u / n_heads, h = u % n_heads;
      attend_one(q + u * head_dim, k_cache, v_cache, out + u * head_dim, first_pos + r + 1, h / group,
                 n_kv_heads, head_dim, scale, scores);
    }
  });
}

}  // namespace brisk::cpu
