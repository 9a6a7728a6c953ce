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
// Key position p of one sequence and kv head -> offset of its row in the pool.
struct KeyRows {
  const int32_t* table;
  int64_t block_size, kv_stride, head_offset;
  int64_t operator()(int64_t p) const {
    return (int64_t(table[p / block_size]) * block_size + p % block_size) * kv_stride + head_offset;
  }
};

__attribute__((target_clones("avx512f", "avx2", "default")))
void attend_block(const float* const* q, float* const* out, const int64_t* n_keys, int64_t n_queries,
                  int64_t n_keys_max, const float* k_pool, const float* v_pool, KeyRows key_row,
                  int64_t head_dim, float scale, float* scores, float* k_transposed) {
  // Pass 1: scores. k_transposed holds [head_dim][16] of the current key block.
  for (int64_t j0 = 0; j0 < n_keys_max; j0 += kLanes) {
    const int64_t width = std::min<int64_t>(kLanes, n_keys_max - j0);
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      const float* kj = k_pool + key_row(j0 + std::min(jj, width - 1));
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
    const float* vj = v_pool + key_row(j);
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

void attention(const float* q, const float* k_pool, const float* v_pool, float* out,
               const AttentionBatch& batch, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
               float scale, ThreadPool& pool) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_stride = n_kv_heads * head_dim;
  const int64_t q_stride = n_heads * head_dim;
  // Units are (sequence, row block, kv head); a unit list keeps threads balanced whatever the mix
  // of long prefills and single decode rows.
  struct Unit {
    int32_t seq, first_row, end_row;
  };
  thread_local std::vector<Unit> units;
  units.clear();
  for (int64_t s = 0; s < batch.n_seqs; ++s) {
    const SequenceSpan& span = batch.host_seqs[s];
    for (int32_t r = 0; r < span.n_rows; r += kRowBlock)
      units.push_back({int32_t(s), r, std::min(span.n_rows, r + int32_t(kRowBlock))});
  }
  const int64_t n_units = int64_t(units.size()) * n_kv_heads;
  const int n_threads = pool.size();
  const Unit* unit_list = units.data();
  pool.run_on_all([&](int t) {
    // Per-thread scratch, grown once and reused by every later call.
    thread_local std::vector<float> scores, k_transposed;
    thread_local std::vector<const float*> q_rows;
    thread_local std::vector<float*> out_rows;
    thread_local std::vector<int64_t> n_keys;
    for (int64_t u = t; u < n_units; u += n_threads) {
      const Unit& unit = unit_list[u / n_kv_heads];
      const int64_t kvh = u % n_kv_heads;
      const SequenceSpan& span = batch.host_seqs[unit.seq];
      const int64_t n_queries = (unit.end_row - unit.first_row) * group;
      const int64_t n_keys_max = span.first_pos + unit.end_row;  // the block's last row sees the most keys
      q_rows.resize(size_t(n_queries));
      out_rows.resize(size_t(n_queries));
      n_keys.resize(size_t(n_queries));
      for (int64_t i = unit.first_row; i < unit.end_row; ++i)
        for (int64_t g = 0; g < group; ++g) {
          const size_t a = size_t((i - unit.first_row) * group + g);
          const int64_t head = kvh * group + g, r = span.first_row + i;
          q_rows[a] = q + r * q_stride + head * head_dim;
          out_rows[a] = out + r * q_stride + head * head_dim;
          n_keys[a] = span.first_pos + i + 1;
        }
      scores.resize(size_t(n_queries * (n_keys_max + kLanes)));
      k_transposed.resize(size_t(head_dim * kLanes));
      const KeyRows key_row{batch.host_block_tables + span.table_offset, batch.block_size, kv_stride,
                            kvh * head_dim};
      attend_block(q_rows.data(), out_rows.data(), n_keys.data(), n_queries, n_keys_max, k_pool,
                   v_pool, key_row, head_dim, scale, scores.data(), k_transposed.data());
    }
  });
}

}  // namespace brisk::cpu
