#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace brisk::cpu {

namespace {

// 16 fp32 lanes as a GCC vector: one zmm on AVX-512, two ymm on AVX2 (each target clone below
// lowers it for its own ISA).
typedef float v16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;
constexpr int kRowBlock = 4;  // query rows handled together: keys/values are reused across them

// A block of query vectors (rows x heads of one GQA group) against all their keys, in two passes
// over the cache: scores for 16 keys at a time from a transposed key block (so each q element is
// one broadcast FMA into 16 lanes), a causal softmax per query, then the values weighted into the
// outputs, each value row loaded once for the whole block. Scores live in `scores`
// [n_queries, n_keys_max]; nothing is ever [T, T] beyond the block.
__attribute__((target_clones("avx512f", "avx2", "default")))
void attend_block(const float* const* q, float* const* out, const int64_t* n_keys, int64_t n_queries,
                  int64_t n_keys_max, const float* k_cache, const float* v_cache, int64_t kv_stride,
                  int64_t head_dim, float scale, float* scores, float* k_transposed) {
  // Pass 1: scores. k_transposed holds [head_dim][16] of the current key block.
  for (int64_t j0 = 0; j0 < n_keys_max; j0 += kLanes) {
    const int64_t width = std::min<int64_t>(kLanes, n_keys_max - j0);
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      const float* kj = k_cache + (j0 + std::min(jj, width - 1)) * kv_stride;
      for (int64_t i = 0; i < head_dim; ++i) k_transposed[i * kLanes + jj] = kj[i];
    }
    for (int64_t a = 0; a < n_queries; ++a) {
      v16 acc = {};
      const float* qa = q[a];
      for (int64_t i = 0; i < head_dim; ++i) {
        v16 kt;
        std::memcpy(&kt, k_transposed + i * kLanes, sizeof(v16));
        acc += qa[i] * kt;
      }
      std::memcpy(scores + a * n_keys_max + j0, &acc, size_t(width) * sizeof(float));
    }
  }
  // Softmax per query over its own (causal) keys; later keys get weight 0.
  for (int64_t a = 0; a < n_queries; ++a) {
    float* s = scores + a * n_keys_max;
    float max_score = -INFINITY;
    for (int64_t j = 0; j < n_keys[a]; ++j) max_score = std::max(max_score, s[j] *= scale);
    float sum = 0;
    for (int64_t j = 0; j < n_keys[a]; ++j) sum += (s[j] = std::exp(s[j] - max_score));
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n_keys[a]; ++j) s[j] *= inv;
    for (int64_t j = n_keys[a]; j < n_keys_max; ++j) s[j] = 0.0f;
    std::fill(out[a], out[a] + head_dim, 0.0f);
  }
  // Pass 2: outputs += p * v, one value row at a time. Explicit vectors: the compiler cannot
  // prove that out and the cache do not overlap, and would otherwise stay scalar.
  const int64_t full = head_dim / kLanes * kLanes;
  for (int64_t j = 0; j < n_keys_max; ++j) {
    const float* vj = v_cache + j * kv_stride;
    for (int64_t a = 0; a < n_queries; ++a) {
      const float p = scores[a * n_keys_max + j];
      float* o = out[a];
      for (int64_t i = 0; i < full; i += kLanes) {
        v16 ov, vv;
        std::memcpy(&ov, o + i, sizeof(v16));
        std::memcpy(&vv, vj + i, sizeof(v16));
        ov += p * vv;
        std::memcpy(o + i, &ov, sizeof(v16));
      }
      for (int64_t i = full; i < head_dim; ++i) o[i] += p * vj[i];
    }
  }
}

}  // namespace

void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t rows,
               int64_t first_pos, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
               ThreadPool& pool) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_stride = n_kv_heads * head_dim;
  const int64_t q_stride = n_heads * head_dim;
  const int64_t row_blocks = (rows + kRowBlock - 1) / kRowBlock;
  // Units are (row block, kv head), interleaved so that causal rows balance across threads.
  const int64_t units = row_blocks * n_kv_heads;
  const int n_threads = pool.size();
  pool.run_on_all([&](int t) {
    // Per-thread scratch, grown once and reused by every later call.
    thread_local std::vector<float> scores, k_transposed;
    thread_local std::vector<const float*> q_rows;
    thread_local std::vector<float*> out_rows;
    thread_local std::vector<int64_t> n_keys;
    for (int64_t u = t; u < units; u += n_threads) {
      const int64_t block = u / n_kv_heads, kvh = u % n_kv_heads;
      const int64_t r0 = block * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
      const int64_t n_queries = (r1 - r0) * group;
      const int64_t n_keys_max = first_pos + r1;  // the block's last row sees the most keys
      q_rows.resize(size_t(n_queries));
      out_rows.resize(size_t(n_queries));
      n_keys.resize(size_t(n_queries));
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t g = 0; g < group; ++g) {
          const size_t a = size_t((r - r0) * group + g);
          const int64_t head = kvh * group + g;
          q_rows[a] = q + r * q_stride + head * head_dim;
          out_rows[a] = out + r * q_stride + head * head_dim;
          n_keys[a] = first_pos + r + 1;
        }
      scores.resize(size_t(n_queries * (n_keys_max + kLanes)));
      k_transposed.resize(size_t(head_dim * kLanes));
      attend_block(q_rows.data(), out_rows.data(), n_keys.data(), n_queries, n_keys_max,
                   k_cache + kvh * head_dim, v_cache + kvh * head_dim, kv_stride, head_dim, scale,
                   scores.data(), k_transposed.data());
    }
  });
}

}  // namespace brisk::cpu
