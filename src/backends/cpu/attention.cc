#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace brisk::cpu {

namespace {

constexpr int kMaxGroup = 16;  // query heads per KV head handled together (GQA group)

// One query row against one KV head, for all `group` query heads that share it: each key and
// value vector is loaded once and used by every head of the group. Built for AVX-512, AVX2 and
// baseline; the loader picks one at run time. Sixteen partial sums let the compiler vectorize
// the dot products without reassociating (no -ffast-math).
__attribute__((target_clones("avx512f", "avx2", "default")))
void attend_group(const float* q, int64_t q_stride, const float* k_cache, const float* v_cache,
                  int64_t kv_stride, float* out, int64_t out_stride, int64_t n_keys, int64_t group,
                  int64_t head_dim, float scale, float* scores /* [group, n_keys] */) {
  float max_score[kMaxGroup];
  for (int64_t g = 0; g < group; ++g) max_score[g] = -INFINITY;
  for (int64_t j = 0; j < n_keys; ++j) {
    const float* kj = k_cache + j * kv_stride;
    for (int64_t g = 0; g < group; ++g) {
      const float* qg = q + g * q_stride;
      float partial[16] = {};
      int64_t i = 0;
      for (; i + 16 <= head_dim; i += 16)
        for (int l = 0; l < 16; ++l) partial[l] += qg[i + l] * kj[i + l];
      float s = 0;
      for (; i < head_dim; ++i) s += qg[i] * kj[i];
      for (float p : partial) s += p;
      s *= scale;
      scores[g * n_keys + j] = s;
      max_score[g] = std::max(max_score[g], s);
    }
  }
  float inv_sum[kMaxGroup];
  for (int64_t g = 0; g < group; ++g) {
    float* sg = scores + g * n_keys;
    float sum = 0;
    for (int64_t j = 0; j < n_keys; ++j) sum += (sg[j] = std::exp(sg[j] - max_score[g]));
    inv_sum[g] = 1.0f / sum;
    std::fill(out + g * out_stride, out + g * out_stride + head_dim, 0.0f);
  }
  for (int64_t j = 0; j < n_keys; ++j) {
    const float* vj = v_cache + j * kv_stride;
    for (int64_t g = 0; g < group; ++g) {
      const float p = scores[g * n_keys + j];
      float* og = out + g * out_stride;
      for (int64_t i = 0; i < head_dim; ++i) og[i] += p * vj[i];
    }
  }
  for (int64_t g = 0; g < group; ++g)
    for (int64_t i = 0; i < head_dim; ++i) out[g * out_stride + i] *= inv_sum[g];
}

}  // namespace

void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t rows,
               int64_t first_pos, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
               ThreadPool& pool) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_stride = n_kv_heads * head_dim;
  const int64_t q_stride = n_heads * head_dim;
  // Units are (row, kv head, slice of the group); interleaved so causal rows balance threads.
  const int64_t slices = (group + kMaxGroup - 1) / kMaxGroup;
  const int64_t units = rows * n_kv_heads * slices;
  const int n_threads = pool.size();
  pool.run_on_all([&](int t) {
    thread_local std::vector<float> scores;  // grows once, reused by every later call
    for (int64_t u = t; u < units; u += n_threads) {
      const int64_t r = u / (n_kv_heads * slices);
      const int64_t kvh = (u / slices) % n_kv_heads;
      const int64_t g0 = (u % slices) * kMaxGroup, gn = std::min<int64_t>(kMaxGroup, group - g0);
      const int64_t n_keys = first_pos + r + 1;
      scores.resize(size_t(gn * n_keys));
      const int64_t head = kvh * group + g0;
      attend_group(q + r * q_stride + head * head_dim, head_dim, k_cache + kvh * head_dim,
                   v_cache + kvh * head_dim, kv_stride, out + r * q_stride + head * head_dim, head_dim,
                   n_keys, gn, head_dim, scale, scores.data());
    }
  });
}

}  // namespace brisk::cpu
