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
constexpr int kRowBlock = 4;     // query rows handled together: keys/values are reused across them
constexpr int kKeyBlock = 32;    // keys scored together (two vectors of lanes)
constexpr int kQueryBlock = 4;   // queries whose scores or outputs are accumulated together

// Key position p of one sequence and kv head -> offset of its row in the pool.
struct KeyRows {
  const int32_t* table;
  int64_t block_size, kv_stride, head_offset;
  int64_t operator()(int64_t p) const {
    return (int64_t(table[p / block_size]) * block_size + p % block_size) * kv_stride + head_offset;
  }
};

// These helpers are always inlined into each target clone of attend_block, so the vector ABI of
// an out-of-line call (which GCC warns about for the default clone) never applies.
#pragma GCC diagnostic ignored "-Wpsabi"
__attribute__((always_inline)) inline v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v16));
  return v;
}
__attribute__((always_inline)) inline void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof(v16)); }

// Scores of Q queries (Q <= kQueryBlock) against the kKeyBlock keys held transposed in kt
// [head_dim][kKeyBlock]. Each loaded key vector serves Q queries and each broadcast query element
// serves two key vectors: 2 + Q loads per 2Q FMAs and 2Q independent chains, where one query at a
// time was bound by two loads per FMA.
template <int Q>
__attribute__((always_inline)) inline void score_queries(const float* const* q, const float* kt, int64_t head_dim,
                                                         float* scores, int64_t stride, int64_t width) {
  v16 lo[Q] = {}, hi[Q] = {};
  for (int64_t i = 0; i < head_dim; ++i) {
    const v16 k_lo = load16(kt + i * kKeyBlock), k_hi = load16(kt + i * kKeyBlock + kLanes);
#pragma GCC unroll 4
    for (int a = 0; a < Q; ++a) {
      lo[a] += q[a][i] * k_lo;
      hi[a] += q[a][i] * k_hi;
    }
  }
#pragma GCC unroll 4
  for (int a = 0; a < Q; ++a) {
    float row[kKeyBlock];
    store16(row, lo[a]);
    store16(row + kLanes, hi[a]);
    std::memcpy(scores + a * stride, row, size_t(width) * sizeof(float));
  }
}

// out[a][d0 .. d0 + 16V) = sum_j p[a][j] * v_j[d0 ..) for Q queries, accumulated in registers
// across all keys (each value vector loaded once per Q queries, no stores inside the key loop).
template <int Q, int V>
__attribute__((always_inline)) inline void weigh_values(float* const* out, const float* scores, int64_t stride,
                                                        int64_t n_keys, const float* v_pool, KeyRows key_row,
                                                        int64_t d0) {
  v16 acc[Q][V] = {};
  for (int64_t j = 0; j < n_keys; ++j) {
    const float* vj = v_pool + key_row(j) + d0;
    v16 vv[V];
#pragma GCC unroll 4
    for (int e = 0; e < V; ++e) vv[e] = load16(vj + e * kLanes);
#pragma GCC unroll 4
    for (int a = 0; a < Q; ++a) {
      const float p = scores[a * stride + j];
#pragma GCC unroll 4
      for (int e = 0; e < V; ++e) acc[a][e] += p * vv[e];
    }
  }
#pragma GCC unroll 4
  for (int a = 0; a < Q; ++a)
#pragma GCC unroll 4
    for (int e = 0; e < V; ++e) store16(out[a] + d0 + e * kLanes, acc[a][e]);
}

// A block of query vectors (rows x heads of one GQA group) against all their keys, in two passes
// over the cache: scores from transposed key blocks (so each q element is one broadcast FMA into
// 16 lanes), a causal softmax per query, then the values weighted into the outputs. Scores live in
// `scores` [n_queries, n_keys_max]; nothing is ever [T, T] beyond the block.
__attribute__((target_clones("avx512f", "avx2", "default")))
void attend_block(const float* const* q, float* const* out, const int64_t* n_keys, int64_t n_queries,
                  int64_t n_keys_max, const float* k_pool, const float* v_pool, KeyRows key_row,
                  int64_t head_dim, float scale, float* scores, float* k_transposed) {
  // Pass 1: scores. k_transposed holds [head_dim][kKeyBlock] of the current key block.
  for (int64_t j0 = 0; j0 < n_keys_max; j0 += kKeyBlock) {
    const int64_t width = std::min<int64_t>(kKeyBlock, n_keys_max - j0);
    for (int64_t jj = 0; jj < kKeyBlock; ++jj) {
      const float* kj = k_pool + key_row(j0 + std::min(jj, width - 1));
      for (int64_t i = 0; i < head_dim; ++i) k_transposed[i * kKeyBlock + jj] = kj[i];
    }
    int64_t a = 0;
    for (; a + kQueryBlock <= n_queries; a += kQueryBlock)
      score_queries<kQueryBlock>(q + a, k_transposed, head_dim, scores + a * n_keys_max + j0, n_keys_max, width);
    for (; a < n_queries; ++a)
      score_queries<1>(q + a, k_transposed, head_dim, scores + a * n_keys_max + j0, n_keys_max, width);
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
  }
  // Pass 2: outputs = scores x values, 64 then 16 dimensions at a time, the rest scalar.
  int64_t a = 0;
  for (; a < n_queries; a += kQueryBlock) {
    const int64_t qa = std::min<int64_t>(kQueryBlock, n_queries - a);
    const float* sa = scores + a * n_keys_max;
    int64_t d0 = 0;
    if (qa == kQueryBlock) {
      for (; d0 + 4 * kLanes <= head_dim; d0 += 4 * kLanes)
        weigh_values<kQueryBlock, 4>(out + a, sa, n_keys_max, n_keys_max, v_pool, key_row, d0);
      for (; d0 + kLanes <= head_dim; d0 += kLanes)
        weigh_values<kQueryBlock, 1>(out + a, sa, n_keys_max, n_keys_max, v_pool, key_row, d0);
    } else {
      for (int64_t b = 0; b < qa; ++b)
        for (int64_t d = 0; d + kLanes <= head_dim; d += kLanes)
          weigh_values<1, 1>(out + a + b, sa + b * n_keys_max, n_keys_max, n_keys_max, v_pool, key_row, d);
      d0 = head_dim / kLanes * kLanes;
    }
    for (int64_t b = 0; b < qa; ++b)
      for (int64_t d = d0; d < head_dim; ++d) {
        float acc = 0;
        for (int64_t j = 0; j < n_keys_max; ++j) acc += sa[b * n_keys_max + j] * v_pool[key_row(j) + d];
        out[a + b][d] = acc;
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
      scores.resize(size_t(n_queries * n_keys_max));
      k_transposed.resize(size_t(head_dim * kKeyBlock));
      const KeyRows key_row{batch.host_block_tables + span.table_offset, batch.block_size, kv_stride,
                            kvh * head_dim};
      attend_block(q_rows.data(), out_rows.data(), n_keys.data(), n_queries, n_keys_max, k_pool,
                   v_pool, key_row, head_dim, scale, scores.data(), k_transposed.data());
    }
  });
}

}  // namespace brisk::cpu
